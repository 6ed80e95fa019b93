"""Campaign effects: Wilson and Newcombe intervals against published values, cells, totals, conversion, ROI."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.models.campaign_effect import (
    ALL,
    EFFECT_COLUMNS,
    campaign_effects,
    uplift_interval,
    wilson_interval,
)

Z95 = 1.959963984540054


def test_wilson_interval_matches_the_closed_form_at_zero_successes():
    low, high = wilson_interval(np.array([0]), np.array([10]), Z95)
    assert low[0] == pytest.approx(0.0, abs=1e-12)
    assert high[0] == pytest.approx(Z95**2 / (10 + Z95**2), rel=1e-12)  # 0.2775


def test_uplift_interval_reproduces_newcombes_worked_example():
    # Newcombe (1998), Statistics in Medicine 17:873, method 10 on 56/70 vs 48/80: 0.0524 to 0.3339.
    d, low, high = uplift_interval(np.array([56]), np.array([70]), np.array([48]), np.array([80]), Z95)
    assert d[0] == pytest.approx(0.2)
    assert (round(low[0], 4), round(high[0], 4)) == (0.0524, 0.3339)


def _contacts(rows: list[tuple[str, str | None, str, int, bool | None, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["campaign_id", "risk_tier", "group", "churned", "responded", "value"])
    return frame.assign(as_of=dt.date(2025, 1, 31))


def test_cells_totals_conversion_and_roi_on_a_hand_made_campaign():
    rows = (
        # critical: treated 4 (1 churned), control 2 (1 churned) -> uplift 0.5 - 0.25 = 0.25, saved 1.0
        [
            ("A", "critical", "treatment", c, r, 100.0)
            for c, r in ((1, True), (0, True), (0, False), (0, None))
        ]
        + [("A", "critical", "control", c, None, 100.0) for c in (1, 0)]
        # high: treated 2 (0 churned), control 2 (1 churned) -> uplift 0.5, saved 1.0
        + [("A", "high", "treatment", 0, False, 50.0), ("A", "high", "treatment", 0, True, 50.0)]
        + [("A", "high", "control", c, None, 50.0) for c in (1, 0)]
        # a tier with no control: reported, but left out of the estimate
        + [("A", "elevated", "treatment", 1, None, 10.0)]
    )
    out = campaign_effects(_contacts(rows), offer_cost=10.0)
    assert list(out.columns) == list(EFFECT_COLUMNS)
    assert list(zip(out.campaign_id, out.risk_tier, strict=True)) == [
        ("A", "critical"), ("A", "elevated"), ("A", "high"), ("A", ALL), (ALL, ALL)
    ]  # fmt: skip
    crit = out.iloc[0]
    assert (crit.treated, crit.control) == (4, 2)
    assert crit.churn_rate_treated == 0.25 and crit.churn_rate_control == 0.5
    assert crit.uplift == pytest.approx(0.25) and crit.saved == pytest.approx(1.0)
    assert crit.uplift_low < crit.uplift < crit.uplift_high
    assert crit.contact_conversion == pytest.approx(2 / 3)  # 3 treated with a recorded answer, 2 yes
    assert crit.value_saved == pytest.approx(100.0) and crit.offer_cost == 40.0
    assert crit.roi == pytest.approx((100.0 - 40.0) / 40.0)
    assert np.isnan(out.iloc[1].uplift) and out.iloc[1].treated == 1  # elevated: no control
    total = out.iloc[3]
    assert total.saved == pytest.approx(2.0)  # critical 1.0 + high 1.0; elevated not measurable
    assert (total.treated, total.control) == (7, 4)
    assert total.uplift == pytest.approx(2.0 / 6)  # per treated customer of the measurable tiers
    assert total.saved_low < total.saved < total.saved_high
    assert out.iloc[4].saved == pytest.approx(total.saved)  # one campaign: the grand total is its total


def test_totals_add_tiers_held_out_at_different_shares_without_simpsons_paradox():
    rng = np.random.default_rng(0)
    rows = []
    # A small high-risk tier mostly held out and a large low-risk tier mostly treated, no effect anywhere:
    # a pooled difference of rates would invent a large effect; the per-tier sum must stay near zero.
    for tier, n, rate, control_share in (("critical", 4000, 0.5, 0.8), ("elevated", 4000, 0.05, 0.1)):
        control = rng.random(n) < control_share
        churned = (rng.random(n) < rate).astype(int)
        rows += [
            ("A", tier, "control" if c else "treatment", y, None, 1.0)
            for c, y in zip(control, churned, strict=True)
        ]
    out = campaign_effects(_contacts(rows), offer_cost=0.0).set_index(["campaign_id", "risk_tier"])
    total = out.loc[("A", ALL)]
    assert total.saved_low < 0 < total.saved_high
    pooled = total.churn_rate_control - total.churn_rate_treated
    assert pooled > 0.2  # what a pooled comparison would claim
    assert abs(total.uplift) < 0.05
    assert np.isnan(total.roi)  # no offer cost: no return ratio
