"""Uplift: the Qini curve on a hand-made ranking, each estimator finding where a contact helps, and the chosen
one (the X-learner) ranking a small effect under churn noise better than differencing two classifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.models.uplift import CHOSEN_ESTIMATOR, ESTIMATORS, fit_uplift, qini_curve


def test_qini_curve_and_coefficient_on_a_hand_made_ranking():
    # ranked 1..4: treated stayer, control churner, treated stayer, control stayer
    curve = qini_curve(np.array([4.0, 3.0, 2.0, 1.0]), np.array([1, 0, 1, 0]), np.array([0, 1, 0, 0]))
    assert curve.share.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    # saved(k) = control churners x treated/control so far - treated churners
    assert curve.saved.tolist() == [0.0, 0.0, 1.0, 2.0, 1.0]
    assert curve.coefficient() == pytest.approx(0.375)  # area above the diagonal to (1, 1)
    assert curve.saved_at(0.5) == pytest.approx(1.0) and curve.saved_at(0.625) == pytest.approx(1.5)
    # the reversed ranking finds the churner last: below the diagonal
    assert (
        qini_curve(
            np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 1, 0]), np.array([0, 1, 0, 0])
        ).coefficient()
        < 0
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_each_estimator_finds_the_customers_a_contact_saves(estimator):
    rng = np.random.default_rng(5)
    n = 12_000
    x = rng.random(n)
    noise = rng.random(n)
    plan = pd.Categorical(rng.choice(["basic", "premium"], n))
    treated = (rng.random(n) < 0.5).astype(np.int8)
    # x > 0.5: persuadable (churn 0.40 -> 0.10 when contacted); x <= 0.5: high risk the contact does not change
    p_not = np.where(x > 0.5, 0.40, 0.45)
    p_yes = np.where(x > 0.5, 0.10, 0.45)
    label = (rng.random(n) < np.where(treated == 1, p_yes, p_not)).astype(np.int8)
    frame = pd.DataFrame({"x": x, "noise": noise, "plan": plan, "treated": treated, "label": label})
    model = fit_uplift(frame, ["x", "noise", "plan"], ["plan"], estimator=estimator, seed=1)
    assert model.estimator == estimator

    test = pd.DataFrame({"x": [0.2, 0.3, 0.7, 0.9], "noise": 0.5, "plan": pd.Categorical(["basic"] * 4)})
    uplift = model.predict(None, test)
    assert np.all(uplift[2:] > 0.18) and np.all(np.abs(uplift[:2]) < 0.08)
    p_not_hat, _ = model.churn_probabilities(test)
    assert p_not_hat[0] > p_not_hat[3]  # ranking by risk would contact the ones it cannot save first
    # On the customers it learnt from, ranking by uplift beats ranking by risk on the observed outcomes.
    p0, _ = model.churn_probabilities(frame)
    by_uplift = qini_curve(model.predict(None, frame), frame.treated, frame.label).coefficient()
    by_risk = qini_curve(p0, frame.treated, frame.label).coefficient()
    assert by_uplift > 0 and by_uplift > 2 * by_risk


def test_an_arm_with_one_outcome_is_refused():
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4], "treated": [1, 1, 0, 0], "label": [0, 0, 0, 1]})
    with pytest.raises(ValueError, match="treated customers of the campaigns have only one outcome"):
        fit_uplift(frame, ["x"], [])


def campaigns_with_a_small_effect(seed: int, n: int = 16_000) -> tuple[pd.DataFrame, np.ndarray]:
    """Campaign targets whose churn risk varies strongly with x0..x2 and the plan, while a contact removes half
    of it where x3 > 0.5 (persuadable) and adds 40% where x4 > 0.8 (annoyed): an effect of a few points of
    churn under the noise of the outcome, as in the simulator. Returns the frame and the true effect."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 10))
    plan = pd.Categorical(rng.choice(["basic", "premium"], n))
    p_not = 1 / (1 + np.exp(2.5 - 2.0 * x[:, 0] - 1.5 * x[:, 1] + 1.0 * x[:, 2] - 0.5 * (plan == "premium")))
    effect = p_not * (np.where(x[:, 3] > 0.5, 0.5, 0.0) - np.where(x[:, 4] > 0.8, 0.4, 0.0))
    treated = (rng.random(n) < 0.5).astype(np.int8)
    label = (rng.random(n) < np.where(treated == 1, p_not - effect, p_not)).astype(np.int8)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(10)]).assign(
        plan=plan, treated=treated, label=label
    )
    return frame, effect


FEATURES = [f"x{i}" for i in range(10)] + ["plan"]


def test_the_chosen_estimator_ranks_a_small_effect_better_than_differencing_two_classifiers():
    frame, _ = campaigns_with_a_small_effect(2)
    fresh, true_effect = campaigns_with_a_small_effect(102)  # new customers, judged against the truth
    chosen = fit_uplift(frame, FEATURES, ["plan"], estimator=CHOSEN_ESTIMATOR, seed=1)
    t_learner = fit_uplift(frame, FEATURES, ["plan"], estimator="t", seed=1)
    corr_chosen = np.corrcoef(chosen.predict(None, fresh), true_effect)[0, 1]
    corr_t = np.corrcoef(t_learner.predict(None, fresh), true_effect)[0, 1]
    assert corr_chosen > corr_t + 0.02, (corr_chosen, corr_t)
    # and it keeps the control arm's P(churn) (the risk ranking): it follows the true risk drivers
    p_not, _ = chosen.churn_probabilities(fresh)
    assert np.corrcoef(p_not, fresh.x0)[0, 1] > 0.3 and np.corrcoef(p_not, fresh.x2)[0, 1] < -0.1


def test_the_chosen_estimator_is_deterministic_given_its_seed():
    frame, _ = campaigns_with_a_small_effect(3, n=4_000)
    fresh, _ = campaigns_with_a_small_effect(4, n=500)
    first, again, other = (
        fit_uplift(frame, FEATURES, ["plan"], seed=s).predict(None, fresh) for s in (7, 7, 8)
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(
        first, other
    )  # the seed is used (bagging), so the equality above means something


def test_an_unknown_estimator_is_refused():
    frame, _ = campaigns_with_a_small_effect(3, n=200)
    with pytest.raises(ValueError, match="unknown uplift estimator 's': one of t, t_regularised, x, dr"):
        fit_uplift(frame, FEATURES, ["plan"], estimator="s")
