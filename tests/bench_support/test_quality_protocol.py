"""The model-quality benchmark's protocol (bench/bench_quality.py): how a cross-sectional extract becomes the
data contract, and how event data is cut at the evaluation date. No outcome of an evaluation customer and
no row after the evaluation date may reach the pipeline."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench.bench_quality import (
    _write_folder,
    cross_sectional_to_contract,
    pareto_nbd_purchases,
    split_customers,
    truncate_at,
)
from churn_pipeline.core.config import LabelConfig, SnapshotConfig
from churn_pipeline.data.io import open_source
from churn_pipeline.features.labels import snapshot_dates

E = dt.date(2024, 6, 30)
H = 30


def extract() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 200
    return pd.DataFrame(
        {
            "emp": np.arange(100, 100 + n),
            "left": rng.random(n) < 0.3,
            "years": rng.integers(0, 12, n),
            "dept": rng.choice(["a", "b", "c"], n),
            "income": rng.integers(1000, 9000, n),
        }
    )


def test_split_is_seeded_and_sized():
    ids = np.arange(1000)
    a, b = split_customers(ids, 0.3, seed=1), split_customers(ids, 0.3, seed=1)
    assert a.sum() == 300 and (a == b).all()
    assert not (a == split_customers(ids, 0.3, seed=2)).all()


def test_extract_maps_to_the_contract_without_evaluation_outcomes(tmp_path):
    raw = extract()
    is_eval = split_customers(raw["emp"].to_numpy(), 0.3, seed=0)
    train, score = cross_sectional_to_contract(
        raw,
        id_column="emp",
        churned=raw["left"],
        tenure_days=raw["years"] * 365,
        extract_date=E,
        horizon_days=H,
        is_eval=is_eval,
        drop=("left", "years"),
    )
    eval_ids = set(raw["emp"][is_eval])
    # The evaluation customers are not in the training data; the scored data has no churn date at all.
    assert not eval_ids & set(train["customer_id"])
    assert set(score["customer_id"]) == set(raw["emp"])
    assert score["churn_date"].isna().all()
    # Outcome and tenure columns are not attributes (they would leak the label or duplicate the tenure).
    assert {"left", "years"}.isdisjoint(train.columns) and {"dept", "income"} <= set(train.columns)
    # Churners land inside the label window of a snapshot at the extract date; stayers have no date.
    left = raw.set_index("emp").loc[train["customer_id"], "left"].to_numpy()
    churn = pd.to_datetime(train["churn_date"])
    assert churn[~left].isna().all()
    assert ((churn[left] > pd.Timestamp(E)) & (churn[left] <= pd.Timestamp(E) + pd.Timedelta(days=H))).all()
    signup = pd.to_datetime(score["signup_date"])
    assert (
        (pd.Timestamp(E) - signup).dt.days.to_numpy()
        == raw.set_index("emp").loc[score["customer_id"], "years"] * 365
    ).all()

    # Both folders pass the data contract, and the training data's single snapshot falls on the extract date.
    _write_folder(tmp_path / "train", {"customers": train})
    _write_folder(tmp_path / "score", {"customers": score})
    source = open_source(tmp_path / "train")
    assert snapshot_dates(source.data_end_date, LabelConfig(horizon_days=H), SnapshotConfig(count=1)) == [E]
    scored = open_source(tmp_path / "score")
    assert scored.data_end_date <= E
    assert pq.read_table(tmp_path / "score" / "customers.parquet").column("churn_date").null_count == len(
        score
    )


def test_truncate_removes_everything_after_the_evaluation_date(tmp_path):
    ts = pd.to_datetime
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "signup_date": ts(["2024-01-01", "2024-01-01", "2024-03-01", "2024-07-01"]).date,
            "churn_date": [None, ts("2024-05-01").date(), ts("2024-07-15").date(), None],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3, 3],
            "ts": ts(
                [
                    "2024-06-30 23:59:59",
                    "2024-07-01 00:00:00",
                    "2024-04-01 00:00:00",
                    "2024-06-01 00:00:00",
                    "2024-07-02 00:00:00",
                ]
            ),
            "event_type": ["login"] * 5,
        }
    )
    contacts = pd.DataFrame(
        {
            "customer_id": [1, 3],
            "ts": ts(["2024-06-29 00:00", "2024-06-30 00:00"]),
            "channel": ["chat", "phone"],
            "is_complaint": [False, True],
            "resolved_ts": ts(["2024-06-30 10:00", "2024-07-03 00:00"]),
            "csat": pd.array([5, 2], dtype="Int8"),
        }
    )
    _write_folder(tmp_path / "full", {"customers": customers, "events": events, "support_contacts": contacts})
    truncate_at(tmp_path / "full", tmp_path / "cut", dt.date(2024, 6, 30), customer_ids=np.array([1, 2, 3]))
    c = pq.read_table(tmp_path / "cut" / "customers.parquet").to_pandas()
    e = pq.read_table(tmp_path / "cut" / "events.parquet").to_pandas()
    s = pq.read_table(tmp_path / "cut" / "support_contacts.parquet").to_pandas()
    assert c["customer_id"].tolist() == [1, 2, 3]  # 4 signs up later (and was not asked for anyway)
    assert c["churn_date"].tolist()[1] == dt.date(2024, 5, 1) and pd.isna(c["churn_date"].tolist()[2])
    assert (e["ts"] < pd.Timestamp("2024-07-01")).all() and len(e) == 3
    assert s["resolved_ts"].isna().tolist() == [False, True] and s["csat"].isna().tolist() == [False, True]
    assert open_source(tmp_path / "cut").data_end_date == dt.date(2024, 6, 30)


def test_pareto_nbd_cohort_is_a_valid_seeded_purchase_log(tmp_path):
    customers, events = pareto_nbd_purchases(3000, days=400, acquisition_days=60, seed=3)
    again, same = pareto_nbd_purchases(3000, days=400, acquisition_days=60, seed=3)
    pd.testing.assert_frame_equal(events, same)
    assert customers["customer_id"].is_unique and customers["churn_date"].isna().all()
    signup = pd.to_datetime(customers.set_index("customer_id")["signup_date"])
    assert (signup - signup.min()).dt.days.max() < 60  # everyone joins in the acquisition window
    first = events.groupby("customer_id")["ts"].min()
    assert first.index.tolist() == customers["customer_id"].tolist()  # one first purchase each, at signup
    assert (first.dt.normalize() == signup.loc[first.index]).all()
    assert (events["ts"] < signup.min() + pd.Timedelta(days=400)).all()
    counts = events.groupby("customer_id").size()
    assert (counts == 1).mean() > 0.2 and counts.max() > 10  # many one-off buyers, some heavy ones
    assert (events["amount"] > 0).all() and set(events["event_type"]) == {"purchase"}
    _write_folder(tmp_path / "log", {"customers": customers, "events": events})
    assert open_source(tmp_path / "log").data_end_date == events["ts"].max().date()
