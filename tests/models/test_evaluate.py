"""Evaluation metrics, calibration error, top-k counts and the campaign-profit curve on hand-computed examples."""

import math

import numpy as np
import pytest

from churn_pipeline.core.config import EvaluationConfig
from churn_pipeline.models import evaluate

Y = np.array([1, 0, 1, 0, 0])
P = np.array([0.9, 0.8, 0.4, 0.3, 0.1])


def test_metrics_match_hand_computed_values():
    m = evaluate.classification_metrics(Y, P, list_size_pct=40)
    # positives 0.9 and 0.4 against negatives 0.8, 0.3, 0.1: 3 + 2 of 6 pairs ranked right
    assert m["roc_auc"] == pytest.approx(5 / 6)
    # ranked labels 1, 0, 1: precision 1 at recall 1/2, 2/3 at recall 1
    assert m["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["brier"] == pytest.approx((0.1**2 + 0.8**2 + 0.6**2 + 0.3**2 + 0.1**2) / 5)
    assert m["log_loss"] == pytest.approx(
        -(math.log(0.9) + math.log(0.2) + math.log(0.4) + math.log(0.7) + math.log(0.9)) / 5
    )
    # top 40% = 2 customers: one churner of two, one of the two churners
    assert m["precision_at_list"] == pytest.approx(0.5)
    assert m["recall_at_list"] == pytest.approx(0.5)
    # top 10% of 5 = 1 customer (a churner): precision 1 / base rate 0.4
    assert m["top_decile_lift"] == pytest.approx(2.5)
    # every probability in its own bin: mean |p - y|
    assert m["ece"] == pytest.approx((0.1 + 0.8 + 0.6 + 0.3 + 0.1) / 5)
    assert m["churn_rate"] == pytest.approx(0.4) and m["mean_predicted"] == pytest.approx(0.5)


def test_ece_pools_predictions_within_a_bin():
    # all four in bin [0.2, 0.3): mean predicted 0.25, observed 0.5
    assert evaluate.expected_calibration_error([1, 1, 0, 0], [0.2, 0.25, 0.25, 0.3 - 1e-9]) == pytest.approx(
        0.25, abs=1e-6
    )
    assert evaluate.expected_calibration_error([1, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]) == pytest.approx(0.0)


def test_top_k_count():
    assert evaluate.top_k_count(5, 10) == 1
    assert evaluate.top_k_count(1000, 10) == 100
    assert evaluate.top_k_count(1001, 10) == 101
    assert evaluate.top_k_count(3, 100) == 3
    assert evaluate.top_k_count(200, 0.1) == 1


def test_profit_curve_on_a_hand_made_example():
    # ranked by p: churner, churner, stayer, churner, then six stayers
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    p = np.linspace(0.95, 0.05, 10)
    econ = EvaluationConfig(customer_value=100, offer_cost=10, offer_acceptance=0.5)
    curve = evaluate.profit_curve(y, p, econ)
    t = curve.table.set_index("k_pct")
    # k=10%: 1 contacted, 1 churner -> 0.5*100*1 - 10*1
    assert curve.profit_at(10) == pytest.approx(40)
    assert curve.profit_at(20) == pytest.approx(100 - 20)
    assert curve.profit_at(30) == pytest.approx(100 - 30)
    assert curve.profit_at(40) == pytest.approx(150 - 40)
    assert curve.profit_at(100) == pytest.approx(150 - 100)
    assert t.loc[35, "contacted"] == 4  # ceil(3.5)
    assert curve.best_contacted == 4 and curve.best_k_pct == pytest.approx(40.0)  # 110 is the maximum
    assert curve.best_profit == pytest.approx(110)
    assert list(curve.table["k_pct"]) == list(range(1, 101))


def test_profit_curve_prefers_contacting_nobody_extra_when_offers_cost_more_than_they_save():
    y = np.array([1, 0, 0, 0])
    curve = evaluate.profit_curve(
        y, [0.9, 0.8, 0.7, 0.6], EvaluationConfig(customer_value=10, offer_cost=20, offer_acceptance=1)
    )
    assert curve.best_contacted == 1 and curve.best_k_pct == pytest.approx(25.0)
    assert curve.best_profit == pytest.approx(-10)
    assert (curve.table["profit"] <= -10).all()


def test_profit_optimal_list_is_found_per_customer_not_per_whole_percent():
    # 1,000 customers, the top 13 by score churn, nobody else: contacting exactly 13 is optimal (1.3%), which
    # whole percents would round to 1% (10 churners) or 2% (20 contacted, 7 wasted offers)
    y = np.zeros(1000)
    y[:13] = 1
    p = np.linspace(1.0, 0.0, 1000)
    econ = EvaluationConfig(customer_value=100, offer_cost=10, offer_acceptance=0.5)
    curve = evaluate.profit_curve(y, p, econ)
    assert curve.best_contacted == 13 and curve.best_k_pct == pytest.approx(1.3)
    assert curve.best_profit == pytest.approx(13 * 50 - 13 * 10)
    assert curve.best_profit > curve.table["profit"].max()
    # a share chosen elsewhere is evaluated on these rows at the same resolution
    assert evaluate.profit_at_share(y, p, econ, 1.3) == pytest.approx(curve.best_profit)
    assert evaluate.profit_at_share(y, p, econ, 2.0) == pytest.approx(13 * 50 - 20 * 10)


def test_better_knows_the_direction_of_each_metric():
    assert evaluate.better("pr_auc", 0.3, 0.2) and not evaluate.better("pr_auc", 0.2, 0.3)
    assert evaluate.better("brier", 0.05, 0.06) and not evaluate.better("log_loss", 0.3, 0.2)
    assert not evaluate.better("roc_auc", 0.7, 0.7)
    assert not evaluate.better("roc_auc", float("nan"), 0.5) and evaluate.better("roc_auc", 0.5, float("nan"))


def test_ratios_and_single_class_metrics():
    r = evaluate.ratios({"roc_auc": 0.7, "brier": 0.06}, {"roc_auc": 0.8, "brier": 0.05})
    assert r["roc_auc"] == pytest.approx(0.875) and r["brier"] == pytest.approx(1.2)
    assert math.isnan(evaluate.roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(evaluate.pr_auc([0, 0], [0.1, 0.2]))


def test_cumulative_gains_and_reliability_table():
    g = evaluate.cumulative_gains(Y, P, points=5)  # pct 0, 20, ..., 100
    assert list(g["gain"]) == pytest.approx([0, 0.5, 0.5, 1.0, 1.0, 1.0])
    t = evaluate.reliability_table(Y, P, n_bins=5)
    assert list(t["rows"]) == [1] * 5
    assert list(t["observed_rate"]) == [0, 0, 1, 0, 1]


def test_length_mismatch_and_nan_are_errors():
    with pytest.raises(ValueError, match="differ in length"):
        evaluate.brier([1, 0], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        evaluate.brier([1, 0], [0.5, float("nan")])
