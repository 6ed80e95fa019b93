"""Explanation: global importance ranks the driving features first; every figure renders."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from churn_pipeline.core.config import EvaluationConfig
from churn_pipeline.models import explain, plots
from churn_pipeline.models.evaluate import profit_curve
from tests.models.synthetic import fit_churn_model, make_training_set


@pytest.fixture(scope="module")
def fitted():
    model, split = fit_churn_model(make_training_set(n_customers=800, snapshots=4, seed=12))
    return model, split.test


def test_global_importance_ranks_the_driving_features_first(fitted):
    model, test = fitted
    contrib = model.contributions(test)
    imp = explain.global_importance(model.booster, contrib)
    assert set(imp["feature"]) == set(model.feature_names)
    assert imp["gain_share"].sum() == pytest.approx(1.0)
    assert imp["mean_abs_contribution"].is_monotonic_decreasing
    assert imp["mean_abs_contribution"].to_numpy() == pytest.approx(
        contrib[imp["feature"]].abs().mean().to_numpy()
    )
    # complaints and recency drive the synthetic churn; region does not
    top3 = set(imp["feature"].head(3))
    assert "complaints_30d" in top3 or "days_since_last_login" in top3
    assert imp["feature"].iloc[-1] != "complaints_30d"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_every_figure_renders(fitted):
    model, test = fitted
    y = test["label"].to_numpy()
    p = model.predict(None, test)
    curves = {"LightGBM": (y, p), "baseline": (y, np.clip(p + 0.01, 0, 1))}
    contrib = model.contributions(test)
    figures = {
        "roc": plots.roc_figure(curves),
        "pr": plots.pr_figure(curves),
        "gains": plots.gains_figure(curves),
        "calibration": plots.calibration_figure(curves),
        "importance": plots.importance_figure(explain.global_importance(model.booster, contrib)),
        "summary": plots.contribution_summary_figure(contrib, test[model.feature_names]),
        "profit": plots.profit_figure({"LightGBM": profit_curve(y, p, EvaluationConfig())}),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure), name
        assert _png(fig).startswith(b"\x89PNG"), name
    labels = [t.get_text() for t in figures["summary"].axes[0].get_yticklabels()]
    assert sorted(labels) == sorted(model.feature_names)
    legend = [t.get_text() for t in figures["roc"].axes[0].get_legend().get_texts()]
    assert any(t.startswith("LightGBM (AUC") for t in legend)
