"""Churn labels look only after t; snapshot dates end where labels stop being observable."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churn_pipeline.core.config import LabelConfig, SnapshotConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import source_from_frames
from churn_pipeline.features.labels import churn_labels, labelled_customers, snapshot_dates
from tests.features.synthetic import AS_OF, as_known_at, customers, frame, random_frames, source

CANCEL = LabelConfig(kind="cancellation", horizon_days=30)
INACTIVE = LabelConfig(kind="inactivity", horizon_days=30, inactivity_lookback_days=30)


def _labels(src, as_of: dt.date, cfg: LabelConfig) -> dict:
    df = churn_labels(src.tables, as_of, cfg).execute()
    assert df["label"].dtype == "int8"
    return dict(zip(df["customer_id"], df["label"], strict=True))


def test_cancellation_label_is_churn_in_the_horizon_after_t() -> None:
    cust = customers(
        (1, "2024-01-01", None),
        (2, "2024-01-01", "2024-07-01"),  # first day after t: churned
        (3, "2024-01-01", "2024-07-30"),  # t + 30: churned
        (4, "2024-01-01", "2024-07-31"),  # t + 31: not within the horizon
        (5, "2024-01-01", "2024-06-30"),  # churned on t: not active, no label
        (6, "2024-07-05", "2024-07-10"),  # signs up after t: no label
    )
    assert _labels(source(customers=cust), AS_OF, CANCEL) == {1: 0, 2: 1, 3: 1, 4: 0}


def test_inactivity_label_among_customers_active_in_the_lookback() -> None:
    cust = customers(*[(i, "2024-01-01", None) for i in range(1, 7)])
    events = frame(
        "customer_id ts event_type",
        [
            (1, "2024-06-20 10:00", "login"),
            (1, "2024-07-15 10:00", "login"),  # came back within the horizon: 0
            (2, "2024-06-01 00:00", "login"),  # first instant of the 30-day lookback; never returns: 1
            (2, "2024-07-31 00:00", "login"),  # t + 31: after the horizon
            (3, "2024-05-31 23:59", "login"),  # just before the lookback: not labelled
            (3, "2024-07-02 10:00", "login"),
            (4, "2024-06-30 23:59", "login"),
            (4, "2024-07-30 23:59", "login"),  # last instant of the horizon: 0
            (5, "2024-06-30 10:00", "login"),
            (5, "2024-07-01 00:00", "login"),  # first instant of the horizon: 0
        ],
    )
    src = source(customers=cust, events=events)
    assert _labels(src, AS_OF, INACTIVE) == {1: 0, 2: 1, 4: 0, 5: 0}
    assert sorted(labelled_customers(src.tables, AS_OF, INACTIVE).execute()["customer_id"]) == [1, 2, 4, 5]


def test_inactivity_label_needs_events() -> None:
    with pytest.raises(ConfigError, match="label.kind=inactivity needs an events table"):
        churn_labels(source().tables, AS_OF, INACTIVE)


@pytest.mark.parametrize("cfg", [CANCEL, INACTIVE], ids=["cancellation", "inactivity"])
def test_data_after_the_horizon_changes_no_label(cfg: LabelConfig) -> None:
    frames = random_frames(seed=7, n_customers=150)
    as_of = dt.date(2024, 7, 1)
    full = churn_labels(source_from_frames(frames).tables, as_of, cfg).execute().sort_values("customer_id")
    cut = churn_labels(
        source_from_frames(as_known_at(frames, as_of + dt.timedelta(days=cfg.horizon_days))).tables,
        as_of,
        cfg,
    )
    pd.testing.assert_frame_equal(
        full.reset_index(drop=True), cut.execute().sort_values("customer_id").reset_index(drop=True)
    )
    assert full["label"].sum() > 0 and (full["label"] == 0).sum() > 0  # the data holds both outcomes


@pytest.mark.parametrize("cfg", [CANCEL, INACTIVE], ids=["cancellation", "inactivity"])
def test_labels_ignore_behaviour_up_to_t_beyond_who_is_labelled(cfg: LabelConfig) -> None:
    """Removing every support contact, survey and payment, and every event before the lookback, leaves
    the labels unchanged: only the labelled population depends on data up to t."""
    frames = random_frames(seed=7, n_customers=150)
    as_of = dt.date(2024, 7, 1)
    full = churn_labels(source_from_frames(frames).tables, as_of, cfg).execute().sort_values("customer_id")
    lookback_start = pd.Timestamp(as_of - dt.timedelta(days=cfg.inactivity_lookback_days - 1))
    e = frames["events"]
    thinner = {
        "customers": frames["customers"],
        "events": e[e["ts"] >= lookback_start].reset_index(drop=True),
    }
    cut = churn_labels(source_from_frames(thinner).tables, as_of, cfg).execute().sort_values("customer_id")
    # the comparison proves something only if rows were removed and both outcomes are labelled
    assert len(thinner["events"]) < len(e) and all(
        len(frames[t]) for t in ("support_contacts", "surveys", "payments")
    )
    assert full["label"].sum() > 0 and (full["label"] == 0).sum() > 0
    pd.testing.assert_frame_equal(full.reset_index(drop=True), cut.reset_index(drop=True))


def test_labels_do_change_with_data_inside_the_horizon() -> None:
    """Guards the two tests above: data in (t, t + h] is what labels are made of."""
    frames = random_frames(seed=7, n_customers=150)
    as_of = dt.date(2024, 7, 1)
    before = as_known_at(frames, as_of)
    for cfg in (CANCEL, INACTIVE):
        full = churn_labels(source_from_frames(frames).tables, as_of, cfg).execute()
        blind = churn_labels(source_from_frames(before).tables, as_of, cfg).execute()
        assert (
            full.sort_values("customer_id")["label"].tolist()
            != blind.sort_values("customer_id")["label"].tolist()
        )


def test_snapshot_dates_end_one_horizon_before_the_data_end() -> None:
    dates = snapshot_dates(
        dt.date(2025, 12, 31), LabelConfig(horizon_days=30), SnapshotConfig(count=4, spacing_days=14)
    )
    assert dates == [dt.date(2025, 10, 20), dt.date(2025, 11, 3), dt.date(2025, 11, 17), dt.date(2025, 12, 1)]
    assert snapshot_dates(dt.date(2025, 1, 31), LabelConfig(horizon_days=7), SnapshotConfig(count=1)) == [
        dt.date(2025, 1, 24)
    ]
