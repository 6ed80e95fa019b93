"""simulation.campaigns: retention campaigns on the simulator's own lists, with a known effect per customer,
compared with the same company simulated without campaigns (same seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from churn_pipeline.core.config import SimulationConfig
from churn_pipeline.data.io import open_source
from churn_pipeline.simulator.company import simulate_company

PLAIN = SimulationConfig(customers=4_000, months=12, seed=21, chunk_customers=2_000)
CAMPAIGNS = SimulationConfig(
    **PLAIN.model_dump(exclude={"campaigns"}),
    campaigns={"every_weeks": 4, "first_month": 4, "target_pct": 10, "control_pct": 50},
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("campaigns")
    for name, cfg in (("plain", PLAIN), ("campaigns", CAMPAIGNS)):
        simulate_company(cfg, root / name, root / f"{name}_truth")
    return {"plain": root / "plain", "campaigns": root / "campaigns", "truth": root / "campaigns_truth"}


def test_campaigns_are_off_by_default_and_write_no_table(pair):
    assert SimulationConfig().campaigns.every_weeks == 0
    assert not (pair["plain"] / "campaigns.parquet").exists()
    assert not (pair["plain"].with_name("plain_truth") / "campaigns.parquet").exists()


def test_the_campaigns_table_meets_the_contract_and_holds_out_controls(pair):
    source = open_source(pair["campaigns"])
    assert source.report.problems == [] and source.tables.campaigns is not None
    c = pd.read_parquet(pair["campaigns"] / "campaigns.parquet")
    assert c.campaign_id.nunique() >= 6
    assert set(c.group) == {"treatment", "control"}
    assert 0.4 < (c.group == "control").mean() < 0.6
    assert c.loc[c.group == "control", "responded"].isna().all()  # control customers were never contacted
    assert c.loc[c.group == "treatment", "responded"].notna().all()
    # A target's effect window does not overlap the next campaign's: nobody is targeted twice within 4 weeks.
    ts = pd.to_datetime(c.sort_values(["customer_id", "ts"]).ts).dt.normalize()  # contact days
    gaps = ts.groupby(c.sort_values(["customer_id", "ts"]).customer_id.to_numpy()).diff().dropna()
    assert (gaps >= pd.Timedelta(days=28)).all()


def test_only_the_treated_customers_churn_differently(pair):
    c = pd.read_parquet(pair["campaigns"] / "campaigns.parquet")
    treated = set(c.loc[c.group == "treatment", "customer_id"])
    plain = pd.read_parquet(pair["plain"] / "customers.parquet").set_index("customer_id")
    camp = pd.read_parquet(pair["campaigns"] / "customers.parquet").set_index("customer_id")
    same = plain.churn_date.eq(camp.churn_date) | (plain.churn_date.isna() & camp.churn_date.isna())
    changed = set(same.index[~same])
    assert changed and changed <= treated  # campaigns change the churn draw of treated customers only
    untouched = plain.index.difference(list(treated))
    pd.testing.assert_frame_equal(plain.loc[untouched], camp.loc[untouched])


def test_the_truth_gives_each_target_both_potential_outcomes_by_type(pair):
    t = pd.read_parquet(pair["truth"] / "campaigns.parquet")
    assert len(t) == len(pd.read_parquet(pair["campaigns"] / "campaigns.parquet"))
    effect = t.p_churn_not_contacted - t.p_churn_contacted
    by_type = effect.groupby(t.customer_type.astype(str))
    assert set(by_type.groups) == {"persuadable", "unaffected", "annoyed"}
    assert (by_type.get_group("persuadable") > 0).all()
    assert (by_type.get_group("annoyed") < 0).all()
    assert np.allclose(by_type.get_group("unaffected"), 0.0)
    assert ((t.p_churn_contacted >= 0) & (t.p_churn_contacted <= 1)).all()


def test_first_month_must_leave_room_for_a_campaign():
    with pytest.raises(ValidationError, match="first_month"):
        SimulationConfig(months=6, campaigns={"every_weeks": 4, "first_month": 6})
