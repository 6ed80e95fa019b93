"""simulate_company: determinism, atomic output, and conformance to the input data contract."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from churn_pipeline.core.config import SimulationConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import open_source
from churn_pipeline.simulator.company import EVENT_TYPES, SUPPORT_CHANNELS, simulate_company

SMALL = SimulationConfig(customers=2_500, months=4, seed=5, chunk_customers=1_000)  # 3 chunks


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------- determinism


def test_same_config_gives_byte_identical_files(tmp_path):
    a = simulate_company(SMALL, tmp_path / "a", tmp_path / "a_truth")
    b = simulate_company(SMALL, tmp_path / "b", tmp_path / "b_truth")
    da, db = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert set(da) == {
        f"{t}.parquet" for t in ("customers", "events", "support_contacts", "surveys", "payments")
    }
    assert da == db
    assert digests(tmp_path / "a_truth") == digests(tmp_path / "b_truth")
    assert a.rows == b.rows and a.monthly_churn_rate == b.monthly_churn_rate


def test_different_seed_gives_different_data(tmp_path):
    simulate_company(SMALL, tmp_path / "a", tmp_path / "a_truth")
    other = SMALL.model_copy(update={"seed": 6})
    simulate_company(other, tmp_path / "b", tmp_path / "b_truth")
    da, db = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert all(da[name] != db[name] for name in da)
    ca = pq.read_table(tmp_path / "a" / "customers.parquet").to_pandas()
    cb = pq.read_table(tmp_path / "b" / "customers.parquet").to_pandas()
    assert not ca["signup_date"].equals(cb["signup_date"])


def test_summary_matches_the_files(tmp_path):
    s = simulate_company(SMALL, tmp_path / "d", tmp_path / "t")
    for name, rows in s.rows.items():
        path = tmp_path / "d" / f"{name}.parquet"
        assert pq.ParquetFile(path).metadata.num_rows == rows
        assert path.stat().st_size == s.bytes[name]
    assert s.rows["customers"] == SMALL.customers
    assert s.start_date == SMALL.start_date
    assert s.end_date == dt.date(2024, 4, 30)  # 4 calendar months from 2024-01-01
    assert s.truth_bytes == sum(p.stat().st_size for p in (tmp_path / "t").iterdir())
    assert s.seconds > 0
    assert s.to_dict()["end_date"] == "2024-04-30"


# ------------------------------------------------------------------------------------ atomic output


def test_rerun_replaces_the_previous_company_whole(tmp_path):
    out, truth = tmp_path / "data", tmp_path / "truth"
    simulate_company(SMALL, out, truth)
    smaller = SMALL.model_copy(update={"customers": 1_200, "seed": 9})
    simulate_company(smaller, out, truth)
    assert pq.ParquetFile(out / "customers.parquet").metadata.num_rows == 1_200
    simulate_company(smaller, tmp_path / "fresh", tmp_path / "fresh_truth")
    assert digests(out) == digests(tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "data",
        "fresh",
        "fresh_truth",
        "truth",
    ]  # no temp dirs


def test_failed_simulation_leaves_nothing_behind(tmp_path):
    # A churn band below what involuntary churn alone gives cannot be calibrated.
    bad = SMALL.model_copy(update={"target_monthly_churn": (0.0001, 0.0002)})
    with pytest.raises(ConfigError, match=r"target_monthly_churn \[0\.0001, 0\.0002\] cannot be reached"):
        simulate_company(bad, tmp_path / "data", tmp_path / "truth")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match=r"refusing to replace data folder .*thesis\.tex"):
        simulate_company(SMALL, precious, tmp_path / "truth")
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_data_and_truth_must_be_different_folders(tmp_path):
    with pytest.raises(ConfigError, match="give the truth its own folder"):
        simulate_company(SMALL, tmp_path / "x", tmp_path / "x")


# -------------------------------------------------------------------------------- data contract v1


def test_passes_contract_validation(company):
    source = open_source(company.data_dir)
    assert source.tables.present() == ["customers", "events", "support_contacts", "surveys", "payments"]
    assert source.data_end_date == dt.date(2024, 12, 31)
    assert source.tables.customers.customer_id.type().is_integer()


def test_columns_and_types(frames):
    c = frames.customers
    assert list(c.columns) == [
        "customer_id", "signup_date", "churn_date", "plan", "monthly_fee", "contract", "region",
        "acquisition_channel", "loyalty_member",
    ]  # fmt: skip
    assert c["customer_id"].dtype == np.int64 and c["customer_id"].is_unique
    assert c["loyalty_member"].dtype == bool
    assert set(c["plan"]) == {"basic", "standard", "premium"}
    assert set(c["contract"]) == {"monthly", "annual", "two_year"}
    assert c["monthly_fee"].between(5, 60).all()
    assert set(frames.events["event_type"]) == set(EVENT_TYPES)
    assert set(frames.support_contacts["channel"]) == set(SUPPORT_CHANNELS)
    assert set(frames.payments["status"]) == {"paid", "failed"}
    for name in ("events", "support_contacts", "surveys", "payments"):
        df = getattr(frames, name)
        assert pd.api.types.is_datetime64_any_dtype(df["ts"]), name
        assert df["customer_id"].dtype == np.int64, name
        assert (
            df.notna().drop(columns=[k for k in ("amount", "resolved_ts", "csat") if k in df]).all().all()
        ), name


def test_value_ranges(frames):
    ev = frames.events
    purchase = ev["event_type"] == "purchase"
    assert ev.loc[purchase, "amount"].gt(0).all() and ev.loc[~purchase, "amount"].isna().all()
    sc = frames.support_contacts
    assert sc["response_minutes"].gt(0).all()
    resolved = sc["resolved_ts"].notna()
    assert (sc.loc[resolved, "resolved_ts"] >= sc.loc[resolved, "ts"]).all()
    assert sc["csat"].dropna().between(1, 5).all()
    assert sc.loc[~resolved, "csat"].isna().all()  # no CSAT while a contact is open
    assert 0.2 < sc["csat"].notna().mean() < 0.7 and 0.05 < (~resolved).mean() < 0.5
    assert frames.surveys["nps"].between(0, 10).all() and frames.surveys["nps"].nunique() >= 8
    assert frames.payments["amount"].gt(0).all()
    start, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2025-01-01")
    for name in ("events", "support_contacts", "surveys", "payments"):
        ts = getattr(frames, name)["ts"]
        assert ts.min() >= start and ts.max() < end, name
    assert sc.loc[resolved, "resolved_ts"].max() < end


def test_rows_only_while_a_customer(frames):
    c = frames.customers.set_index("customer_id")
    churned = c["churn_date"].notna()
    assert (c.loc[churned, "churn_date"] >= c.loc[churned, "signup_date"]).all()
    assert churned.any() and (~churned).any()
    never = pd.Timestamp("2262-01-01")
    for name in ("events", "support_contacts", "surveys", "payments"):
        df = getattr(frames, name)
        assert df["customer_id"].isin(c.index).all(), name
        signup = pd.to_datetime(df["customer_id"].map(c["signup_date"]))
        churn = pd.to_datetime(df["customer_id"].map(c["churn_date"])).fillna(never)
        assert (df["ts"] >= signup).all(), f"{name}: rows before signup"
        assert (df["ts"] < churn).all(), f"{name}: rows on or after the churn date"


def test_events_sorted_by_customer_and_time(frames):
    ev = frames.events
    assert ev["customer_id"].is_monotonic_increasing
    key = ev["customer_id"].to_numpy() * 10**12 + (ev["ts"].astype("int64") // 10**6).to_numpy()
    assert (np.diff(key) >= 0).all()


def test_price_rise_only_in_payment_amounts(frames):
    pay = frames.payments.merge(frames.customers[["customer_id", "monthly_fee"]], on="customer_id")
    pay = pay.merge(
        frames.truth_customers[["customer_id", "price_rise_date", "price_rise_pct"]], on="customer_id"
    )
    risen = pay["price_rise_date"].notna() & (pay["ts"].dt.date >= pay["price_rise_date"])
    assert risen.any() and pay["price_rise_date"].notna().mean() > 0.1
    np.testing.assert_allclose(pay.loc[~risen, "amount"], pay.loc[~risen, "monthly_fee"])
    np.testing.assert_allclose(
        pay.loc[risen, "amount"],
        (pay.loc[risen, "monthly_fee"] * (1 + pay.loc[risen, "price_rise_pct"])).round(2),
    )


def test_monthly_payments(frames):
    """Stayers who were customers all year pay once a month (plus retries after failures)."""
    c = frames.customers
    stayers = c.loc[c["churn_date"].isna() & (c["signup_date"] < dt.date(2024, 1, 1)), "customer_id"]
    pay = frames.payments[frames.payments["customer_id"].isin(stayers)]
    per_month = pay[pay["status"] == "paid"].groupby(["customer_id", pay["ts"].dt.month]).size()
    assert per_month.median() == 1
    assert len(per_month) >= 0.95 * len(stayers) * 12


def test_billing_days_cover_the_whole_month(frames):
    """Customers who signed up on the 29th-31st pay on those days (or the month's last day), so
    "days since last payment" does not depend on where in the month an as-of date falls."""
    c = frames.customers
    pay = frames.payments.merge(c[["customer_id", "signup_date"]], on="customer_id")
    first = pay[pay["status"] == "paid"].sort_values("ts").groupby("customer_id").head(3)
    signup_dom = pd.to_datetime(first["signup_date"]).dt.day
    month_len = first["ts"].dt.days_in_month
    late = signup_dom >= 29
    assert late.sum() > 20
    # A first charge is on the signup day of month, or the month's last day when the month is shorter.
    on_time = first["ts"].dt.day == signup_dom.clip(upper=month_len)
    assert on_time[late].mean() > 0.9
    assert set(first.loc[late, "ts"].dt.day) >= {29, 30, 31}
