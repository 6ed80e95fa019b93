"""Calibration: calibrated rates match true and observed rates, the raw score's order survives, both classes needed."""

import numpy as np
import pytest

from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.models import evaluate
from churn_pipeline.models.calibration import fit_calibrator


def _simulated(n: int, seed: int):
    """True churn probabilities, realised labels, and an over-confident, biased raw score of them."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-2.5, 1.2, n)
    p_true = 1 / (1 + np.exp(-true_logit))
    y = (rng.random(n) < p_true).astype(int)
    raw = 1 / (1 + np.exp(-(2.0 * true_logit + 2.5)))  # ranks right, probabilities far off
    return p_true, y, raw


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrated_rates_match_true_and_observed_rates(method):
    _, y_val, raw_val = _simulated(20_000, seed=1)
    p_true, y, raw = _simulated(20_000, seed=2)
    cal = fit_calibrator(raw_val, y_val, method)
    p = cal.transform(raw)

    assert evaluate.expected_calibration_error(y, raw) > 0.05  # the raw score is badly calibrated
    assert evaluate.expected_calibration_error(y, p) < 0.02
    # per decile of the calibrated score: mean prediction vs the true probability and the observed rate
    t = evaluate.reliability_table(y, p, n_bins=10)
    assert np.abs(t["mean_predicted"] - t["observed_rate"]).max() < 0.04
    order = np.argsort(p)
    for chunk in np.array_split(order, 10):
        assert abs(p[chunk].mean() - p_true[chunk].mean()) < 0.03
    assert abs(p.mean() - y.mean()) < 0.01


def test_isotonic_keeps_the_ranking_of_the_raw_score_and_never_says_zero():
    _, y_val, raw_val = _simulated(3_000, seed=3)
    _, _, raw = _simulated(3_000, seed=4)
    p = fit_calibrator(raw_val, y_val, "isotonic").transform(raw)
    assert np.array_equal(np.argsort(p, kind="stable"), np.argsort(raw, kind="stable"))
    assert p.min() > 0 and p.max() < 1
    assert len(np.unique(p)) == len(np.unique(raw))


def test_calibration_needs_both_classes():
    with pytest.raises(DataValidationError, match="valid_snapshots"):
        fit_calibrator(np.array([0.1, 0.2, 0.3]), np.array([0, 0, 0]), "isotonic")
