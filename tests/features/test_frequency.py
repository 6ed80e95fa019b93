"""The frequency family on hand-made events (as of 2024-06-30, end of day): counts, rates, gaps, overdue."""

from __future__ import annotations

import math

import pytest

from churn_pipeline.features import frequency
from tests.features.synthetic import AS_OF, frame, rows_by_customer, source


@pytest.fixture(scope="module")
def rows() -> dict:
    events = frame(
        "customer_id ts event_type",
        [
            # visit days 06-01 (twice), 06-11, 06-15, 06-27: gaps 10, 4, 12
            (1, "2024-06-01 08:00", "login"),
            (1, "2024-06-01 23:59:59", "purchase"),  # same day: one visit, two events
            (1, "2024-06-11 08:00", "login"),
            (1, "2024-06-15 10:00", "purchase"),
            (1, "2024-06-27 00:00", "login"),
            (1, "2024-07-01 00:00", "login"),  # first instant after t: unknown at t
            (1, "2024-07-03 12:00", "login"),
            # two visit days 20 days apart, silent for 40 days
            (2, "2024-05-01 10:00", "login"),
            (2, "2024-05-21 10:00", "login"),
            (2, "2024-05-21 11:00", "login"),
            # a single visit on the as-of day
            (3, "2024-06-30 10:00", "login"),
            # visit days 01-01, 01-02, 01-03, 03-03 (gaps 1, 1, 60: spreading out)
            (4, "2024-01-01 10:00", "login"),
            (4, "2024-01-02 10:00", "login"),
            (4, "2024-01-03 10:00", "login"),
            (4, "2024-03-03 10:00", "login"),
            # gaps 2, 4, 6, 20: an even number of gaps
            (6, "2024-05-01 10:00", "login"),
            (6, "2024-05-03 10:00", "login"),
            (6, "2024-05-07 10:00", "login"),
            (6, "2024-05-13 10:00", "login"),
            (6, "2024-06-02 10:00", "login"),
        ],
    )
    cust = frame("customer_id signup_date churn_date", [(i, "2023-12-01", None) for i in (1, 2, 3, 4, 5, 6)])
    return rows_by_customer(
        frequency.frequency_features(source(events=events, customers=cust).tables.events, AS_OF)
    )


def test_counts_ages_and_rates(rows: dict) -> None:
    r = rows[1]
    assert r["lifetime_events"] == 5 and r["visit_days"] == 4
    assert r["events_per_week"] == pytest.approx(5 * 7 / 30)  # 30 days: 06-01 .. 06-30
    assert r["events_per_active_day"] == pytest.approx(5 / 4)
    assert rows[3]["events_per_week"] == pytest.approx(
        7.0
    )  # first event on the as-of day: one day, one event
    assert 5 not in rows  # no events: absent (the feature table fills 0 counts, null rates)


def test_gap_statistics_count_days_not_events(rows: dict) -> None:
    r = rows[1]
    gaps = [10, 4, 12]
    mean = sum(gaps) / 3
    std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / 2)
    assert r["visit_gap_mean_days"] == pytest.approx(mean)
    assert r["visit_gap_median_days"] == 10
    assert r["visit_gap_std_days"] == pytest.approx(std)
    assert r["visit_gap_cv"] == pytest.approx(std / mean)
    # customer 2's second day has two events: still one gap of 20 days, not 20 and 0
    assert rows[2]["visit_gap_mean_days"] == 20 and rows[2]["visit_gap_median_days"] == 20


def test_median_gap_is_robust_and_interpolates_an_even_count(rows: dict) -> None:
    # customer 4's gaps 1, 1, 60: the median stays at 1 where the mean is pulled to 20.7
    assert rows[4]["visit_gap_median_days"] == 1
    assert rows[4]["visit_gap_mean_days"] == pytest.approx(62 / 3)
    # customer 6's gaps 2, 4, 6, 20: the median is the mean of the middle two (DuckDB and Spark alike)
    assert rows[6]["visit_gap_median_days"] == 5


def test_overdue_ratio_and_gap_trend(rows: dict) -> None:
    assert rows[1]["visit_overdue_ratio"] == pytest.approx(3 / (26 / 3))  # last visit 06-27: 3 days ago
    assert rows[2]["visit_overdue_ratio"] == pytest.approx(40 / 20)  # 05-21 -> 06-30
    assert rows[1]["visit_gap_last_vs_mean"] == pytest.approx(12 / (26 / 3))
    assert rows[4]["visit_gap_last_vs_mean"] == pytest.approx(60 / (62 / 3))


def test_too_few_visits_leave_gap_statistics_null(rows: dict) -> None:
    one, two = rows[3], rows[2]
    for name in ("visit_gap_mean_days", "visit_gap_median_days", "visit_gap_std_days", "visit_gap_cv",
                 "visit_overdue_ratio", "visit_gap_last_vs_mean"):  # fmt: skip
        assert one[name] is None, name
    assert two["visit_gap_std_days"] is None and two["visit_gap_cv"] is None  # one gap: no spread
    assert two["visit_gap_last_vs_mean"] is None  # the only gap is the mean: no trend to tell
