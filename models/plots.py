"""Evaluation figures for MLflow (`mlflow.log_figure`).

Figures are built as `matplotlib.figure.Figure` objects, never through pyplot, so they render with the Agg
(PNG) canvas on a headless machine and leave no global figure state behind. Curves take a mapping
`name -> (labels, probabilities)` so the model, the baseline and the oracle share one chart.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from churn_pipeline.models import evaluate
from churn_pipeline.models.evaluate import ProfitCurve

Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]
_COLORS = {"lightgbm": "#1f77b4", "baseline": "#ff7f0e", "oracle": "#2ca02c"}


def _figure(width: float = 6.5, height: float = 5.0, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _color(name: str):
    return _COLORS.get(name.lower())


def roc_figure(curves: Curves) -> Figure:
    """ROC curves with their AUC in the legend."""
    fig, (ax,) = _figure()
    for name, (y, p) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {evaluate.roc_auc(y, p):.3f})", color=_color(name))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC curve (test)")
    ax.legend(loc="lower right")
    return fig


def pr_figure(curves: Curves) -> Figure:
    """Precision-recall curves with average precision, and the churn rate as the no-skill line."""
    fig, (ax,) = _figure()
    base = None
    for name, (y, p) in curves.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=f"{name} (PR-AUC {evaluate.pr_auc(y, p):.3f})", color=_color(name))
        base = float(np.mean(y))
    if base is not None:
        ax.axhline(base, ls="--", color="grey", lw=1, label=f"churn rate {base:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return fig


def gains_figure(curves: Curves) -> Figure:
    """Cumulative gains (share of churners in the top x%) and lift."""
    fig, (ax_gain, ax_lift) = _figure(11, 4.8, ncols=2)
    for name, (y, p) in curves.items():
        g = evaluate.cumulative_gains(y, p)
        ax_gain.plot(g["pct"], g["gain"], label=name, color=_color(name))
        ax_lift.plot(g["pct"][1:], g["lift"][1:], label=name, color=_color(name))
    ax_gain.plot([0, 100], [0, 1], ls="--", color="grey", lw=1, label="random")
    ax_gain.set(
        xlabel="top % of customers contacted", ylabel="share of churners reached", title="Cumulative gains"
    )
    ax_lift.axhline(1, ls="--", color="grey", lw=1)
    ax_lift.set(xlabel="top % of customers contacted", ylabel="lift", title="Lift", xlim=(0, 100))
    ax_gain.legend(loc="lower right")
    ax_lift.legend(loc="upper right")
    return fig


def calibration_figure(curves: Curves, n_bins: int = 10) -> Figure:
    """Reliability diagram (equal-frequency bins) and the distribution of predicted probabilities."""
    fig, (ax, ax_hist) = _figure(11, 4.8, ncols=2)
    top = 0.0
    for name, (y, p) in curves.items():
        t = evaluate.reliability_table(y, p, n_bins)
        ece = evaluate.expected_calibration_error(y, p)
        ax.plot(
            t["mean_predicted"],
            t["observed_rate"],
            marker="o",
            label=f"{name} (ECE {ece:.3f})",
            color=_color(name),
        )
        ax_hist.hist(p, bins=50, range=(0, 1), histtype="step", label=name, color=_color(name))
        top = max(top, float(t["mean_predicted"].max()), float(t["observed_rate"].max()))
    lim = min(1.0, top * 1.1 + 0.01)
    ax.plot([0, lim], [0, lim], ls="--", color="grey", lw=1, label="perfectly calibrated")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed churn rate",
        title="Calibration (test)",
        xlim=(0, lim),
        ylim=(0, lim),
    )
    ax.legend(loc="upper left")
    ax_hist.set(
        xlabel="predicted probability", ylabel="customers", title="Predicted probabilities", yscale="log"
    )
    ax_hist.legend(loc="upper right")
    return fig


def importance_figure(importance: pd.DataFrame, top: int = 20) -> Figure:
    """Mean |contribution| (log-odds) and, for trees, gain share of the top features."""
    t = importance.head(top).iloc[::-1]
    has_contrib = "mean_abs_contribution" in t.columns
    has_gain = "gain_share" in t.columns
    ncols = int(has_contrib) + int(has_gain)
    fig, axes = _figure(11 if ncols == 2 else 6.5, max(3.0, 0.3 * len(t) + 1.2), ncols=max(ncols, 1))
    if has_gain:
        ax_gain = axes[-1]
        ax_gain.barh(t["feature"], t["gain_share"], color="#7f7f7f")
        ax_gain.set(xlabel="share of total split gain", title="Gain importance")
    if has_contrib:
        axes[0].barh(t["feature"], t["mean_abs_contribution"], color="#1f77b4")
        axes[0].set(xlabel="mean |contribution| (log-odds)", title="Contribution importance")
    return fig


def contribution_summary_figure(
    contrib: pd.DataFrame, values: pd.DataFrame, top: int = 15, max_points: int = 3000, seed: int = 0
) -> Figure:
    """SHAP-style beeswarm from LightGBM pred_contrib: one row per feature, a dot per customer at its
    contribution, coloured by the feature's value (percentile within the feature; grey for categories)."""
    order = contrib.abs().mean().sort_values(ascending=False).index[:top]
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(contrib), size=min(max_points, len(contrib)), replace=False) if len(contrib) else []
    c = contrib.iloc[rows]
    v = values.iloc[rows]
    fig, (ax,) = _figure(8, max(3.0, 0.4 * len(order) + 1.5))
    scatter = None
    for i, name in enumerate(reversed(order)):
        x = c[name].to_numpy()
        # jitter proportional to the local density of contributions, so crowded values spread out
        hist, edges = np.histogram(x, bins=40)
        density = hist[np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(hist) - 1)] / max(
            hist.max(), 1
        )
        y = i + (rng.random(x.size) - 0.5) * 0.8 * density
        col = v[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object:
            ax.scatter(x, y, s=6, color="#999999", alpha=0.6, linewidths=0)
        else:
            num = pd.to_numeric(col, errors="coerce")
            color = num.rank(pct=True).to_numpy()
            missing = np.isnan(color)
            ax.scatter(x[missing], y[missing], s=6, color="#999999", alpha=0.6, linewidths=0)
            scatter = ax.scatter(
                x[~missing],
                y[~missing],
                s=6,
                c=color[~missing],
                cmap="coolwarm",
                vmin=0,
                vmax=1,
                alpha=0.8,
                linewidths=0,
            )
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(order)), list(reversed(order)))
    ax.set(xlabel="contribution to churn log-odds", title="Feature contributions (test customers)")
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, ticks=[0, 1])
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value (grey: category / missing)")
    return fig


def profit_figure(curves: Mapping[str, ProfitCurve]) -> Figure:
    """Expected campaign profit of contacting the top k%, with each curve's optimum marked."""
    fig, (ax,) = _figure()
    for name, curve in curves.items():
        t = curve.table
        ax.plot(
            t["k_pct"],
            t["profit"],
            label=f"{name} (best k={curve.best_k_pct:.3g}%: {curve.best_profit:,.0f})",
            color=_color(name),
        )
        ax.scatter([curve.best_k_pct], [curve.best_profit], color=_color(name), zorder=3)
    ax.axhline(0, color="grey", lw=1)
    ax.set(
        xlabel="top k% of customers contacted",
        ylabel="expected profit (realised churners)",
        title="Retention campaign profit (test)",
    )
    ax.legend(loc="best")
    return fig


def learning_curve_figure(curves: list[list[float]]) -> Figure:
    """LightGBM validation log loss per boosting iteration (one line per fold), best iteration marked."""
    fig, (ax,) = _figure()
    for i, curve in enumerate(curves):
        it = np.arange(1, len(curve) + 1)
        label = "validation" if len(curves) == 1 else f"fold {i + 1}"
        ax.plot(it, curve, lw=1.2, label=label)
        best = int(np.argmin(curve))
        ax.scatter([best + 1], [curve[best]], s=15, zorder=3)
    ax.set(xlabel="boosting iteration", ylabel="validation log loss", title="LightGBM learning curve")
    ax.legend(loc="upper right")
    return fig
