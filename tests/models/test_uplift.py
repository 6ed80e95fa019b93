"""Uplift: the Qini curve on a hand-made ranking, and the T-learner finding where a contact helps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.models.uplift import fit_uplift, qini_curve


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


def test_the_t_learner_finds_the_customers_a_contact_saves():
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
    model = fit_uplift(frame, ["x", "noise", "plan"], ["plan"], seed=1)

    test = pd.DataFrame({"x": [0.2, 0.3, 0.7, 0.9], "noise": 0.5, "plan": pd.Categorical(["basic"] * 4)})
    uplift = model.predict(None, test)
    assert np.all(uplift[2:] > 0.18) and np.all(np.abs(uplift[:2]) < 0.08)
    p_not_hat, _ = model.churn_probabilities(test)
    assert p_not_hat[0] > p_not_hat[3]  # ranking by risk would contact the ones it cannot save first
    # On the customers it learnt from, ranking by uplift beats ranking by risk on the observed outcomes.
    p0, p1 = model.churn_probabilities(frame)
    by_uplift = qini_curve(p0 - p1, frame.treated, frame.label).coefficient()
    by_risk = qini_curve(p0, frame.treated, frame.label).coefficient()
    assert by_uplift > 0 and by_uplift > 2 * by_risk


def test_an_arm_with_one_outcome_is_refused():
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4], "treated": [1, 1, 0, 0], "label": [0, 0, 0, 1]})
    with pytest.raises(ValueError, match="treated customers of the campaigns have only one outcome"):
        fit_uplift(frame, ["x"], [])
