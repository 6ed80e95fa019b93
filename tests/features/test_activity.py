"""Activity counts, active days, trends and spend on hand-made tables (as of 2024-06-30, end of day).

Windows: 7d = 06-24..06-30, 30d = 06-01..06-30, 90d = 04-02..06-30; the trend's 'previous 60' = 04-02..05-31.
"""

from __future__ import annotations

import pytest

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.features import activity
from tests.features.synthetic import AS_OF, customers, frame, rows_by_customer, source

CFG = FeatureConfig(event_types=("login", "purchase"))

EVENTS = frame(
    "customer_id ts event_type amount",
    [
        (1, "2024-06-30 12:00", "login", None),
        (1, "2024-06-30 13:00", "login", None),  # same day: one active day
        (1, "2024-06-25 09:00", "purchase", 10.0),
        (1, "2024-06-10 09:00", "login", None),
        (1, "2024-05-15 09:00", "error", None),
        (1, "2024-04-02 00:00", "login", None),  # first instant of the 90-day window
        (1, "2024-04-01 23:59", "purchase", 99.0),  # just before it
        (1, "2024-07-01 00:00", "purchase", 500.0),  # after t
        (2, "2024-03-01 09:00", "login", None),  # older than every window
        (4, "2024-05-01 09:00", "login", None),  # only in the 60 days before the last 30
    ],
)


@pytest.fixture(scope="module")
def rows() -> dict:
    cust = customers(*[(i, "2024-01-01", None) for i in (1, 2, 3, 4)])
    return rows_by_customer(
        activity.activity_features(source(customers=cust, events=EVENTS).tables.events, AS_OF, CFG)
    )


def test_event_counts_per_window_and_type(rows: dict) -> None:
    r = rows[1]
    assert (r["events_7d"], r["events_30d"], r["events_90d"]) == (3, 4, 6)
    assert (r["events_login_7d"], r["events_login_30d"], r["events_login_90d"]) == (2, 3, 4)
    assert (r["events_purchase_7d"], r["events_purchase_30d"], r["events_purchase_90d"]) == (1, 1, 1)
    assert 2 not in rows  # nothing in the last 90 days: not in the family table (build.py fills 0)


def test_active_days_count_distinct_days(rows: dict) -> None:
    r = rows[1]
    assert (r["active_days_7d"], r["active_days_30d"], r["active_days_90d"]) == (2, 3, 5)


def test_trend_ratios(rows: dict) -> None:
    # last 30 days: 4 events -> 4/30 a day; the 60 before: 2 events -> 2/60 a day
    assert rows[1]["events_trend_30_vs_prev60"] == pytest.approx((4 / 30) / (2 / 60))
    assert rows[1]["events_trend_7_vs_30"] == pytest.approx((3 / 7) / (4 / 30))
    # activity faded completely: nothing in the last 30 days after 1 event in the 60 before
    assert rows[4]["events_trend_30_vs_prev60"] == 0.0
    # no baseline: null, not infinite
    assert rows[4]["events_trend_7_vs_30"] is None


def test_spend_sums_amounts_in_window(rows: dict) -> None:
    assert (rows[1]["spend_7d"], rows[1]["spend_30d"], rows[1]["spend_90d"]) == (10.0, 10.0, 10.0)
    assert rows[4]["spend_90d"] is None  # events but no amounts in the window; build.py fills 0


def test_without_amount_column_spend_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    events = EVENTS.drop(columns="amount")
    with caplog.at_level("INFO", logger="features"):
        table = activity.activity_features(
            source(events=events[events.customer_id < 3]).tables.events, AS_OF, CFG
        )
    assert not any(c.startswith("spend_") for c in table.columns)
    assert "events_30d" in table.columns
    assert "events.amount not in the data source" in caplog.text


def test_windows_follow_the_config() -> None:
    cfg = FeatureConfig(windows=(1, 14))
    table = activity.activity_features(
        source(events=EVENTS[EVENTS.customer_id < 3]).tables.events, AS_OF, cfg
    )
    r = rows_by_customer(table)[1]
    assert (r["events_1d"], r["events_14d"], r["active_days_14d"]) == (2, 3, 2)
    assert "events_30d" not in table.columns


def test_active_days_across_bit_mask_words() -> None:
    """Windows longer than one 62-day word of the day bit mask count every day exactly once."""
    import datetime as dt

    ages = [0, 0, 61, 62, 123, 124, 129, 130]  # days before t (0 twice: one active day)
    events = frame(
        "customer_id ts event_type",
        # Distinct hours: two identical rows would be exact duplicates, which the data contract reports.
        [(1, f"{AS_OF - dt.timedelta(days=a)} {10 + i}:00", "login") for i, a in enumerate(ages)],
    )
    cfg = FeatureConfig(windows=(62, 63, 124, 130))
    r = rows_by_customer(activity.activity_features(source(events=events).tables.events, AS_OF, cfg))[1]
    assert (r["active_days_62d"], r["active_days_63d"], r["active_days_124d"], r["active_days_130d"]) == (
        2,
        3,
        4,
        6,
    )
    assert r["events_130d"] == 7


def test_active_days_of_a_long_window_with_every_day_active() -> None:
    """A customer active on each of 200 days counts 200 (per-word counts are widened before summing)."""
    import datetime as dt

    events = frame(
        "customer_id ts event_type",
        [(1, f"{AS_OF - dt.timedelta(days=a)} 12:00", "login") for a in range(200)],
    )
    cfg = FeatureConfig(windows=(180, 200))
    r = rows_by_customer(activity.activity_features(source(events=events).tables.events, AS_OF, cfg))[1]
    assert (r["active_days_180d"], r["active_days_200d"]) == (180, 200)
