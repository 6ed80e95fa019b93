"""The oracle: true churn probabilities from the stored hazard path."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn_pipeline.core.errors import ConfigError
from churn_pipeline.simulator.oracle import true_churn_probability

AS_OFS = (dt.date(2024, 5, 15), dt.date(2024, 8, 7), dt.date(2024, 10, 30))  # Wednesdays: windows cut weeks


def active_with_labels(customers: pd.DataFrame, as_of: dt.date, horizon: int) -> pd.DataFrame:
    signup, churn = customers["signup_date"], customers["churn_date"]
    active = (signup <= as_of) & (churn.isna() | (churn > as_of))
    out = customers.loc[active, ["customer_id"]].copy()
    end = as_of + dt.timedelta(days=horizon)
    out["label"] = (churn[active].notna() & (churn[active] > as_of) & (churn[active] <= end)).astype(int)
    return out


def test_probabilities_rank_and_match_realised_churn(frames):
    pooled = []
    for as_of in AS_OFS:
        df = active_with_labels(frames.customers, as_of, 30)
        df["p"] = true_churn_probability(frames.truth_dir, df["customer_id"].to_numpy(), as_of, 30)
        pooled.append(df)
    df = pd.concat(pooled)
    assert df["p"].between(0, 1).all() and df["p"].nunique() > 100
    assert df["label"].sum() > 150
    assert roc_auc_score(df["label"], df["p"]) > 0.75
    # Calibrated: overall, and the riskiest fifth churns far more than the safest fifth, as predicted.
    assert df["p"].mean() == pytest.approx(df["label"].mean(), rel=0.2)
    df["fifth"] = pd.qcut(df["p"].rank(method="first"), 5, labels=False)
    by = df.groupby("fifth")[["p", "label"]].mean()
    assert by.loc[4, "label"] > 5 * by.loc[0, "label"]
    assert by.loc[4, "label"] == pytest.approx(by.loc[4, "p"], rel=0.35)


def test_matches_a_day_by_day_computation(frames):
    """Independent re-computation: expand each week to days (daily hazard 1-(1-h)^(1/7)) and multiply."""
    as_of, horizon = dt.date(2024, 3, 13), 45  # starts on a Thursday, ends mid-week
    ids = frames.customers["customer_id"].iloc[::97].to_numpy()
    got = true_churn_probability(frames.truth_dir, ids, as_of, horizon)
    hz = frames.hazard[frames.hazard["customer_id"].isin(ids)]
    days = hz.loc[hz.index.repeat(7)].copy()
    days["day"] = pd.to_datetime(days["week_start"]) + pd.to_timedelta(
        np.tile(np.arange(7), len(hz)), unit="D"
    )
    in_window = (days["day"] > pd.Timestamp(as_of)) & (
        days["day"] <= pd.Timestamp(as_of) + pd.Timedelta(days=horizon)
    )
    days = days[in_window]
    daily = 1 - (1 - days["hazard"].astype(float)) ** (1 / 7)
    survival = (1 - daily).groupby(days["customer_id"]).prod()
    expected = 1 - survival.reindex(ids).fillna(1.0).to_numpy()
    churned_before = frames.customers.set_index("customer_id").loc[ids, "churn_date"]
    expected[(churned_before.notna() & (churned_before <= as_of)).to_numpy()] = 0.0
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
    assert (expected > 0).sum() > 10


def test_order_follows_the_input_and_longer_horizons_are_likelier(frames):
    as_of = AS_OFS[0]
    ids = active_with_labels(frames.customers, as_of, 60)["customer_id"].to_numpy()[:500]
    p30 = true_churn_probability(frames.truth_dir, ids, as_of, 30)
    shuffled = np.random.default_rng(0).permutation(len(ids))
    np.testing.assert_array_equal(
        true_churn_probability(frames.truth_dir, ids[shuffled], as_of, 30), p30[shuffled]
    )
    p60 = true_churn_probability(frames.truth_dir, ids, as_of, 60)
    assert (p60 >= p30).all() and (p60 > p30).mean() > 0.95


def test_customers_who_already_churned_get_zero(frames):
    as_of = dt.date(2024, 9, 1)
    c = frames.customers
    gone = c.loc[c["churn_date"].notna() & (c["churn_date"] <= as_of), "customer_id"].to_numpy()
    assert len(gone) > 50
    assert (true_churn_probability(frames.truth_dir, gone, as_of, 30) == 0).all()


def test_clear_errors(frames, tmp_path):
    ids = frames.customers["customer_id"].to_numpy()[:5]
    with pytest.raises(ConfigError, match=r"outside the simulated period 2024-01-01 \.\. 2024-12-31"):
        true_churn_probability(frames.truth_dir, ids, dt.date(2024, 12, 15), 30)
    with pytest.raises(
        ConfigError, match=r"2 customer ids are not in the simulated company .*e\.g\. 999999991"
    ):
        true_churn_probability(
            frames.truth_dir, np.r_[ids, 999_999_991, 999_999_992], dt.date(2024, 6, 1), 30
        )
    with pytest.raises(ConfigError, match="no simulator ground truth in"):
        true_churn_probability(tmp_path, ids, dt.date(2024, 6, 1), 30)


def test_hazard_path_runs_to_the_end_even_after_churn(frames):
    """Every customer has one row per week from their first at-risk week to the last week, churned or not:
    a path that stopped at the churn week would shorten churners' windows and bias the oracle down for
    exactly the customers who churn."""
    hz = frames.hazard
    last_week = pd.Timestamp(frames.meta["start_date"]) + pd.Timedelta(days=7 * (frames.meta["weeks"] - 1))
    assert last_week <= pd.Timestamp(frames.meta["end_date"]) < last_week + pd.Timedelta(days=7)
    per = hz.groupby("customer_id")["week_start"].agg(["min", "max", "size"])
    weeks_spanned = (pd.to_datetime(per["max"]) - pd.to_datetime(per["min"])).dt.days // 7 + 1
    assert (per["size"] == weeks_spanned).all()  # contiguous, one row per week
    assert (pd.to_datetime(per["max"]) == last_week).all()
    churned = frames.customers.set_index("customer_id")["churn_date"].notna()
    assert churned.reindex(per.index).sum() > 300
    # Customers who signed up before the period are at risk from its first week.
    c = frames.customers
    tenured = c.loc[c["signup_date"] < dt.date(2024, 1, 1), "customer_id"]
    assert (pd.to_datetime(per.loc[tenured, "min"]) == pd.Timestamp("2024-01-01")).all()
