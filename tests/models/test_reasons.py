"""Reasons and suggested actions from contributions, on small hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.core.config import ScoringConfig
from churn_pipeline.features.catalog import describe, family
from churn_pipeline.models.reasons import reasons_and_actions, top_reason_features

FEATURES = [
    "complaints_30d",
    "days_since_last_event",
    "failed_payments_30d",
    "tenure_days",
    "plan",
    "price_rise",
]


def _features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "complaints_30d": [3, 0, 1, 0],
            "days_since_last_event": [21.0, 2.0, np.nan, 5.0],
            "failed_payments_30d": [2, 0, 0, 4],
            "tenure_days": [400, 30, 90, 700],
            "plan": pd.Categorical(["basic", "pro", "basic", "pro"]),
            "price_rise": [0, 1, 0, 0],
        },
        index=[10, 11, 12, 13],
    )


def _contributions(rows: list[list[float]], index=(10, 11, 12, 13)) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=FEATURES, index=list(index))


def test_top_three_positive_contributions_in_order_with_the_customers_values():
    contrib = _contributions(
        [
            [0.9, 0.5, 0.2, -0.3, 0.1, 0.0],  # complaints > inactivity > failed payments (plan 4th: dropped)
            [-0.1, -0.2, 0.0, 0.05, 0.3, 1.2],  # price rise, then plan, then tenure
            [-0.5, 0.7, -0.1, -0.2, -0.1, 0.0],  # only one positive contribution (inactivity, value missing)
            [-0.1, -0.1, -0.2, -0.3, 0.0, 0.0],  # nothing raises the risk
        ]
    )
    got = reasons_and_actions(contrib, _features(), ScoringConfig())

    assert got.index.tolist() == [10, 11, 12, 13]
    assert got.loc[10, ["reason_1", "reason_2", "reason_3"]].tolist() == [
        "3 complaints in the last 30 days",
        "no activity for 21 days",
        "2 failed payments in the last 30 days",
    ]
    assert got.loc[11, ["reason_1", "reason_2", "reason_3"]].tolist() == [
        describe("price_rise", 1),
        "plan: pro",
        "customer for 30 days",
    ]
    assert got.loc[12, "reason_1"] == "no activity recorded"
    assert got.loc[12, "reason_2"] is None and got.loc[12, "reason_3"] is None
    assert got.loc[13, ["reason_1", "reason_2", "reason_3"]].isna().all()

    cfg = ScoringConfig()
    assert got["suggested_action"].tolist() == [
        cfg.actions["complaints"],
        cfg.actions["price"],
        cfg.actions["recency"],
        cfg.default_action,  # no reason, no specific action
    ]


def test_action_mapping_is_configurable_with_a_fallback():
    cfg = ScoringConfig(actions={"payments": "Call billing"}, default_action="Review by hand")
    contrib = _contributions(
        [
            [0.0, 0.0, 0.8, 0.0, 0.0, 0.0],
            [0.9, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.3, 0.0, 0.0, 0.0],
        ]
    )
    got = reasons_and_actions(contrib, _features(), cfg)
    assert got["suggested_action"].tolist() == [
        "Call billing",
        "Review by hand",
        "Review by hand",
        "Call billing",
    ]


def test_reasons_quote_each_customers_own_values_on_a_larger_random_frame():
    rng = np.random.default_rng(5)
    n = 500
    features = pd.DataFrame(
        {
            "complaints_30d": rng.integers(0, 6, n),
            "days_since_last_event": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 60, n)),
            "failed_payments_30d": rng.integers(0, 4, n),
            "tenure_days": rng.integers(1, 2000, n),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "family"], n)),
            "price_rise": rng.integers(0, 2, n),
        },
        index=rng.permutation(np.arange(1000, 1000 + n)),  # a shuffled, non-default index
    )
    contrib = pd.DataFrame(rng.normal(0, 1, (n, len(FEATURES))), columns=FEATURES, index=features.index)
    contrib["_bias"] = 5.0  # a bias column is not a feature: never a reason
    got = reasons_and_actions(contrib, features, ScoringConfig())

    for cid in features.index:  # the reference: a plain per-row computation, in the test only
        c = contrib.loc[cid, FEATURES]
        positive = c[c > 0].sort_values(ascending=False).index[:3].tolist()
        expected = [describe(f, features.loc[cid, f]) for f in positive]
        expected += [None] * (3 - len(expected))
        assert got.loc[cid, ["reason_1", "reason_2", "reason_3"]].tolist() == expected, cid
        action = (
            ScoringConfig().actions.get(family(positive[0])) if positive else ScoringConfig().default_action
        )
        assert got.loc[cid, "suggested_action"] == action


def test_top_reason_features_handles_fewer_features_than_reasons():
    contrib = pd.DataFrame({"a": [0.5, -1.0], "b": [0.7, 0.2]})
    positions, valid = top_reason_features(contrib, k=3)
    assert positions.shape == (2, 3)
    assert positions[0, :2].tolist() == [1, 0] and valid[0].tolist() == [True, True, False]
    assert positions[1, 0] == 1 and valid[1].tolist() == [True, False, False]


def test_misaligned_frames_are_refused():
    contrib = _contributions([[0.1] * 6] * 4, index=(1, 2, 3, 4))
    with pytest.raises(ValueError, match="same index"):
        reasons_and_actions(contrib, _features(), ScoringConfig())


def test_a_fact_is_named_once_whatever_its_windows():
    names = [
        "failed_payments_30d",
        "failed_payments_90d",
        "complaints_30d",
        "events_login_30d",
        "events_error_30d",
    ]
    features = pd.DataFrame([[2, 2, 1, 0, 4]], columns=names, index=[7])
    contrib = pd.DataFrame([[0.9, 0.8, 0.5, 0.4, 0.3]], columns=names, index=[7])
    got = reasons_and_actions(contrib, features, ScoringConfig())
    assert got.loc[7, ["reason_1", "reason_2", "reason_3"]].tolist() == [
        "2 failed payments in the last 30 days",  # the 90-day twin is skipped, not a second reason
        "1 complaint in the last 30 days",
        "0 login events in the last 30 days",  # same window, another event type: a different fact
    ]


def test_distinct_concepts_on_a_random_frame_match_a_per_row_reference():
    from churn_pipeline.features.catalog import concept

    rng = np.random.default_rng(9)
    names = [
        f"{base}_{w}d"
        for base in ("failed_payments", "complaints", "events_login", "events_error")
        for w in (7, 30, 90)
    ]
    names += ["tenure_days", "days_since_last_event"]
    n = 300
    features = pd.DataFrame(rng.integers(0, 5, (n, len(names))), columns=names)
    contrib = pd.DataFrame(rng.normal(0, 1, (n, len(names))), columns=names)
    got = reasons_and_actions(contrib, features, ScoringConfig())
    for i in range(n):
        chosen, seen = [], set()
        for f in contrib.loc[i].sort_values(ascending=False, kind="stable").index:
            if contrib.loc[i, f] > 0 and concept(f) not in seen and len(chosen) < 3:
                chosen.append(f)
                seen.add(concept(f))
        expected = [describe(f, features.loc[i, f]) for f in chosen] + [None] * (3 - len(chosen))
        assert got.loc[i, ["reason_1", "reason_2", "reason_3"]].tolist() == expected, i
