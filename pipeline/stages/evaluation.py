"""Test-set evaluation shared by `churn train` and `churn evaluate`: every scorer's probabilities on the same
rows (`Scored`), and their metrics, profit curves and ratios to the oracle (`Evaluation`).

Pure: nothing here reads or writes; `stages.tracking` logs an `Evaluation` to MLflow, the CLI prints it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_pipeline.core.config import Config
from churn_pipeline.models import evaluate
from churn_pipeline.models.evaluate import ProfitCurve

MODEL, ORACLE = "model", "oracle"
# A reference scorer of test rows handed in by the caller (the CLI passes the simulator's oracle): the true
# churn probabilities of a frame's rows, or None and a note saying why there are none.
Oracle = Callable[[pd.DataFrame], tuple[np.ndarray | None, str | None]]


@dataclass
class Scored:
    """Each scorer's churn probabilities for the same test rows, and the rows' labels; `baselines` names the
    non-learned scorers, `oracle_note` says why the oracle is missing or what it is."""

    labels: np.ndarray
    scores: dict[str, np.ndarray]
    baselines: tuple[str, ...] = ()
    oracle_note: str | None = None


@dataclass
class Evaluation:
    """Test-set metrics and profit curves of each scorer (candidates, baselines, oracle; `model` when a
    registered version is evaluated); `chosen` is the scorer of the registered model."""

    metrics: dict[str, dict[str, float]]
    profit: dict[str, ProfitCurve]
    ratios: dict[str, dict[str, float]]  # "<scorer>_to_oracle" -> metric -> ratio
    test_snapshots: list[dt.date]
    rows: int
    oracle_note: str | None = None
    chosen: str = MODEL
    baselines: tuple[str, ...] = ()
    # the at-risk list size the model publishes (a share of customers, chosen on validation) and what it
    # earns on these test rows; None when no such share is known
    list_pct: float | None = None
    list_pct_origin: str = ""
    list_profit: float | None = None

    def display_name(self, scorer: str) -> str:
        """The scorer's name in plots: the registered model's candidate is marked as such."""
        return f"{scorer} (registered)" if scorer == self.chosen and scorer != MODEL else scorer


def scored_rows(
    rows: pd.DataFrame,
    scores: dict[str, np.ndarray],
    oracle: Oracle | None,
    baselines: tuple[str, ...] = (),
) -> Scored:
    """`scores` of `rows` with the rows' labels, and the oracle's probabilities when it has some."""
    probability, note = oracle(rows) if oracle else (None, None)
    if probability is not None:
        scores = {**scores, ORACLE: probability}
    return Scored(rows["label"].to_numpy(), scores, baselines, note)


def evaluate_scores(
    scored: Scored,
    cfg: Config,
    test_snapshots: list[dt.date],
    *,
    chosen: str = MODEL,
    list_pct: float | None = None,
    list_pct_origin: str = "",
) -> Evaluation:
    """Metrics, profit curves and ratios to the oracle of every scorer on the same test rows; with
    `list_pct`, also what a list of that share (chosen elsewhere) earns here with the chosen scorer."""
    labels, scores = scored.labels, scored.scores
    metrics = {
        k: evaluate.classification_metrics(labels, p, cfg.evaluation.list_size_pct) for k, p in scores.items()
    }
    profit = {k: evaluate.profit_curve(labels, p, cfg.evaluation) for k, p in scores.items()}
    ratios = {}
    if ORACLE in metrics:
        for k in metrics:
            if k != ORACLE:
                ratios[f"{k}_to_oracle"] = evaluate.ratios(metrics[k], metrics[ORACLE])
    list_profit = (
        None
        if list_pct is None
        else evaluate.profit_at_share(labels, scores[chosen], cfg.evaluation, list_pct)
    )
    return Evaluation(
        metrics,
        profit,
        ratios,
        list(test_snapshots),
        int(len(labels)),
        scored.oracle_note,
        chosen,
        tuple(scored.baselines),
        list_pct,
        list_pct_origin,
        list_profit,
    )
