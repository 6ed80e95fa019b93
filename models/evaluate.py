"""Evaluation metrics of churn probabilities against realised labels, and the campaign profit curve.

Top-k quantities rank customers by probability, highest first (ties keep input order), and contact
`ceil(k/100 * n)` customers for a list of k percent.

Campaign profit of contacting the top k% (realised labels y, contacted set C_k):

    profit(k) = offer_acceptance * customer_value * sum_{i in C_k} y_i  -  offer_cost * |C_k|

i.e. every contacted customer costs `offer_cost`; a contacted customer who really churned is retained with
probability `offer_acceptance`, which keeps `customer_value`. Non-churners contacted cost money and gain
nothing. The profit-optimal list is found at per-customer resolution: the number of contacted customers
m in 1..n maximising profit (the smallest such m on ties), reported as the share 100 * m / n percent; the
whole-percent table is kept for plots. Training chooses it on validation predictions and reports what it
earns on test, so the list size is never picked on the rows it is judged on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from churn_pipeline.core.config import EvaluationConfig

# Metrics where a smaller value is better (the promotion gate and the model/oracle ratio need this).
LOWER_IS_BETTER = frozenset({"brier", "log_loss", "ece"})
_PROB_CLIP = 1e-15


def _arrays(y_true, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    q = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != q.shape:
        raise ValueError(f"labels and probabilities differ in length: {y.size} vs {q.size}")
    if y.size == 0:
        raise ValueError("cannot evaluate on zero rows")
    if np.isnan(q).any():
        raise ValueError(f"{int(np.isnan(q).sum())} probabilities are NaN")
    return y, q


def _ranked_labels(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    order = np.argsort(-p, kind="stable")
    return y[order]


def top_k_count(n: int, pct: float) -> int:
    """How many of `n` customers a top-`pct`% list contacts (at least one)."""
    return max(1, min(n, math.ceil(pct / 100.0 * n - 1e-9)))


def roc_auc(y_true, p) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    y, q = _arrays(y_true, p)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, q))


def pr_auc(y_true, p) -> float:
    """Area under the precision-recall curve (average precision; NaN without positives)."""
    y, q = _arrays(y_true, p)
    if y.max() == 0:
        return float("nan")
    return float(average_precision_score(y, q))


def brier(y_true, p) -> float:
    """Mean squared error of the probabilities."""
    y, q = _arrays(y_true, p)
    return float(np.mean((q - y) ** 2))


def log_loss(y_true, p) -> float:
    """Mean negative log-likelihood (probabilities clipped to [1e-15, 1 - 1e-15])."""
    y, q = _arrays(y_true, p)
    q = np.clip(q, _PROB_CLIP, 1 - _PROB_CLIP)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def precision_recall_at(y_true, p, pct: float) -> tuple[float, float]:
    """Precision and recall of the top-`pct`% list."""
    y, q = _arrays(y_true, p)
    k = top_k_count(y.size, pct)
    hits = _ranked_labels(y, q)[:k].sum()
    positives = y.sum()
    return float(hits / k), float(hits / positives) if positives else float("nan")


def lift_at(y_true, p, pct: float) -> float:
    """Churn rate in the top-`pct`% list divided by the overall churn rate."""
    y, q = _arrays(y_true, p)
    base = y.mean()
    if base == 0:
        return float("nan")
    precision, _ = precision_recall_at(y, q, pct)
    return float(precision / base)


def expected_calibration_error(y_true, p, n_bins: int = 10) -> float:
    """Sum over equal-width probability bins of (bin share) * |mean predicted - observed rate|."""
    y, q = _arrays(y_true, p)
    bins = np.minimum((q * n_bins).astype(np.int64), n_bins - 1)
    sum_p = np.bincount(bins, weights=q, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    return float(np.sum(np.abs(sum_p - sum_y)) / y.size)


def classification_metrics(y_true, p, list_size_pct: float) -> dict[str, float]:
    """All the headline metrics of one set of probabilities."""
    y, q = _arrays(y_true, p)
    precision, recall = precision_recall_at(y, q, list_size_pct)
    return {
        "roc_auc": roc_auc(y, q),
        "pr_auc": pr_auc(y, q),
        "brier": brier(y, q),
        "log_loss": log_loss(y, q),
        "top_decile_lift": lift_at(y, q, 10.0),
        "precision_at_list": precision,
        "recall_at_list": recall,
        "ece": expected_calibration_error(y, q),
        "mean_predicted": float(q.mean()),
        "churn_rate": float(y.mean()),
        "rows": float(y.size),
    }


def ratios(model: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """model / reference for every shared metric (for lower-is-better metrics > 1 means worse)."""
    out = {}
    for key in (
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
        "top_decile_lift",
        "precision_at_list",
        "recall_at_list",
    ):
        a, b = model.get(key), reference.get(key)
        if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
            continue
        out[key] = float(a / b)
    return out


def better(metric: str, candidate: float, incumbent: float, margin: float = 0.0) -> bool:
    """True when `candidate` is strictly better than `incumbent` on `metric`, by more than `margin` (a share of
    the incumbent's value) when one is given."""
    if not np.isfinite(candidate):
        return False
    if not np.isfinite(incumbent):
        return True
    slack = margin * abs(incumbent)
    return candidate < incumbent - slack if metric in LOWER_IS_BETTER else candidate > incumbent + slack


@dataclass(frozen=True)
class ProfitCurve:
    """Expected campaign profit of contacting the top customers: per whole percent k (the table, for plots) and
    at the per-customer optimum (`best_contacted` customers, `best_k_pct` = their share in percent)."""

    table: pd.DataFrame  # k_pct, contacted, churners_contacted, profit
    best_k_pct: float
    best_profit: float
    best_contacted: int
    rows: int

    def profit_at(self, k_pct: int) -> float:
        return float(self.table.loc[self.table["k_pct"] == k_pct, "profit"].iloc[0])


def _cumulative_churners(y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Churners among the top m customers by score, for m = 0..n (index m)."""
    return np.concatenate([[0.0], np.cumsum(_ranked_labels(y, q))])


def _profits(cum_churners: np.ndarray, econ: EvaluationConfig) -> np.ndarray:
    """Profit of contacting the top m customers, for m = 0..n (index m)."""
    contacted = np.arange(cum_churners.size, dtype=np.float64)
    return econ.offer_acceptance * econ.customer_value * cum_churners - econ.offer_cost * contacted


def profit_curve(y_true, p, econ: EvaluationConfig) -> ProfitCurve:
    """Profit of the top-k% list for every whole percent k, and the profit-optimal list at per-customer
    resolution (formula in the module docstring)."""
    y, q = _arrays(y_true, p)
    cum_churners = _cumulative_churners(y, q)
    profits = _profits(cum_churners, econ)
    k_pct = np.arange(1, 101)
    contacted = np.maximum(1, np.minimum(y.size, np.ceil(k_pct / 100.0 * y.size - 1e-9).astype(np.int64)))
    best = 1 + int(np.argmax(profits[1:]))  # a list holds at least one customer; first maximum = smallest
    table = pd.DataFrame(
        {
            "k_pct": k_pct,
            "contacted": contacted,
            "churners_contacted": cum_churners[contacted].astype(np.int64),
            "profit": profits[contacted],
        }
    )
    return ProfitCurve(
        table=table,
        best_k_pct=100.0 * best / y.size,
        best_profit=float(profits[best]),
        best_contacted=best,
        rows=int(y.size),
    )


def profit_at_share(y_true, p, econ: EvaluationConfig, share_pct: float) -> float:
    """Profit of contacting the top `share_pct` percent (`top_k_count` customers) of these rows: what a list
    size chosen elsewhere (on validation) earns here."""
    y, q = _arrays(y_true, p)
    return float(_profits(_cumulative_churners(y, q), econ)[top_k_count(y.size, share_pct)])


def cumulative_gains(y_true, p, points: int = 100) -> pd.DataFrame:
    """Share of all churners captured by the top x% (x = 0..100): columns pct, gain, lift."""
    y, q = _arrays(y_true, p)
    cum = _cumulative_churners(y, q)
    pct = np.linspace(0, 100, points + 1)
    counts = np.ceil(pct / 100.0 * y.size - 1e-9).astype(np.int64)
    total = y.sum()
    gain = cum[counts] / total if total else np.zeros_like(pct)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where(pct > 0, gain / (pct / 100.0), np.nan)
    return pd.DataFrame({"pct": pct, "gain": gain, "lift": lift})


def reliability_table(y_true, p, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed churn rate per equal-frequency bin (for the reliability diagram)."""
    y, q = _arrays(y_true, p)
    order = np.argsort(q, kind="stable")
    bins = np.empty(y.size, dtype=np.int64)
    bins[order] = np.minimum(np.arange(y.size) * n_bins // y.size, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    keep = count > 0
    mean_p = np.bincount(bins, weights=q, minlength=n_bins)[keep] / count[keep]
    rate = np.bincount(bins, weights=y, minlength=n_bins)[keep] / count[keep]
    return pd.DataFrame({"mean_predicted": mean_p, "observed_rate": rate, "rows": count[keep]})


def baseline_scores(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Non-learned churn scores of a feature frame, higher = riskier, for comparison with the models:
    `recency` (days_since_last_event; never active counts as the longest gap) and, when the frame has BG/NBD
    columns, 1 - `btyd_p_alive*` and -`btyd_expected_events*` under their column names. Absent columns are
    skipped."""
    out: dict[str, np.ndarray] = {}
    if "days_since_last_event" in frame.columns:
        days = pd.to_numeric(frame["days_since_last_event"], errors="coerce").to_numpy(dtype=np.float64)
        finite = np.isfinite(days)
        fill = (np.max(days[finite]) + 1.0) if finite.any() else 0.0
        out["recency"] = np.where(finite, days, fill)
    for col in frame.columns:
        if not (col.startswith("btyd_p_alive") or col.startswith("btyd_expected_events")):
            continue
        v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        score = 1.0 - v if col.startswith("btyd_p_alive") else -v
        finite = np.isfinite(score)
        out[col] = np.where(finite, score, np.nanmedian(score) if finite.any() else 0.0)
    return out


def squash(score: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """A strictly increasing map of an arbitrary score into (0, 1) (logistic of the score standardised by the
    reference's median and spread), so it can be calibrated like a probability."""
    ref = np.asarray(reference, dtype=np.float64)
    center = float(np.median(ref)) if ref.size else 0.0
    spread = float(np.subtract(*np.percentile(ref, [75, 25]))) if ref.size else 1.0
    spread = spread if spread > 0 else (float(np.std(ref)) or 1.0)
    z = np.clip((np.asarray(score, dtype=np.float64) - center) / spread, -30, 30)
    return 1.0 / (1.0 + np.exp(-z))
