"""The retention KPIs (`features.kpis`): every KPI on a hand-made company whose figures are worked out below,
the period boundaries, and that deleting the data after a period's end changes none of its KPIs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churn_pipeline.core.config import KpiConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import source_from_frames
from churn_pipeline.features.kpis import (
    KPI_COLUMNS,
    WEEKS_PER_MONTH,
    Period,
    complete_periods,
    retention_kpis,
)
from tests.features.synthetic import as_known_at, frame, random_frames, with_boundary_rows

JUNE = Period(dt.date(2024, 6, 1), dt.date(2024, 7, 1))
JULY = Period(dt.date(2024, 7, 1), dt.date(2024, 8, 1))
CFG = KpiConfig(segments=("plan",), margin_pct=50, clv_hazard_periods=2, clv_max_months=100)


def hand_made() -> dict[str, pd.DataFrame]:
    """Eight customers; the comments say which period counts each row and why."""
    customers = frame(
        "customer_id signup_date churn_date plan monthly_fee",
        [
            (1, "2024-01-01", None, "basic", 10.0),  # active throughout
            (2, "2024-01-01", "2024-06-15", "basic", 10.0),  # lost in June
            (3, "2024-03-01", "2024-07-01", "pro", 30.0),  # still active at the start of July, lost in July
            (4, "2024-06-01", None, "pro", 30.0),  # new in June (signed up on its first day)
            (5, "2024-06-10", "2024-06-20", "basic", 10.0),  # new and lost in June
            (6, "2024-05-31", None, "pro", 30.0),  # active at the start of June (signed up its eve)
            (7, "2024-07-15", None, "basic", 10.0),  # new in July
            (8, "2024-08-05", None, "pro", 30.0),  # after both periods
        ],
    )
    payments = frame(
        "customer_id ts amount status",
        [
            (1, "2024-05-15", 10.0, "paid"),  # June's 30-day window [05-02, 06-01)
            (1, "2024-06-15", 10.0, "paid"),  # July's window [06-01, 07-01)
            (2, "2024-05-20", 10.0, "paid"),  # June
            (2, "2024-05-25", 10.0, "failed"),  # failed: never revenue
            (3, "2024-05-01 23:00", 30.0, "paid"),  # before June's window
            (3, "2024-06-20", 30.0, "paid"),  # July
            (6, "2024-06-01 00:00", 30.0, "paid"),  # July, not June (the window ends before June starts)
        ],
    )
    contacts = frame(
        "customer_id ts channel is_complaint response_minutes resolved_ts",
        [
            (2, "2024-05-28 09:00", "chat", False, 15.0, "2024-05-28 10:00"),  # g: May; FCR cohort of June
            (1, "2024-06-02 10:00", "chat", False, 10.0, "2024-06-02 12:00"),  # a: repeated by b -> not FCR
            (1, "2024-06-05 10:00", "email", True, 20.0, "2024-06-07 10:00"),  # b: complaint, 48 h
            (6, "2024-06-10 00:00", "chat", False, 30.0, None),  # c: never resolved
            (4, "2024-06-20 00:00", "phone", True, 40.0, "2024-06-21 00:00"),  # e: complaint, 24 h
            (3, "2024-06-30 23:00", "chat", True, 120.0, "2024-07-02 23:00"),  # d: answered in July, 48 h
            (7, "2024-07-20 00:00", "chat", False, 5.0, "2024-07-20 01:00"),  # f: repeated by h
            (7, "2024-07-22 00:00", "chat", False, 15.0, None),  # h
        ],
    )
    surveys = frame(
        "customer_id ts nps",
        [
            (1, "2024-06-03", 10),
            (1, "2024-06-25", 9),
            (6, "2024-06-10", 3),
            (4, "2024-06-12", 7),  # not a customer at the start of June: counts in NPS, not in non-response
            (3, "2024-07-05", 0),
            (1, "2024-07-01 00:00", 0),  # July's first instant
        ],
    )
    return {"customers": customers, "payments": payments, "support_contacts": contacts, "surveys": surveys}


def kpis(frames, periods=(JUNE, JULY), cfg=CFG, unit="month", value_column="monthly_fee") -> pd.DataFrame:
    source = source_from_frames(frames, today=dt.date(2024, 12, 31))
    df = retention_kpis(source.tables, list(periods), cfg, unit, value_column).to_pyarrow().to_pandas()
    return df.sort_values(["period_start", "segment", "segment_value"]).reset_index(drop=True)


def row(df: pd.DataFrame, period: Period, segment: str = "all", value: str = "all") -> pd.Series:
    (i,) = df.index[(df.period_start == period.start) & (df.segment == segment) & (df.segment_value == value)]
    return df.loc[i]


@pytest.fixture(scope="module")
def hand() -> pd.DataFrame:
    return kpis(hand_made())


def test_columns_and_rows(hand):
    assert tuple(hand.columns) == KPI_COLUMNS
    keys = set(zip(hand.period_start, hand.segment, hand.segment_value, strict=True))
    assert keys == {
        (p.start, s, v) for p in (JUNE, JULY) for s, v in [("all", "all"), ("plan", "basic"), ("plan", "pro")]
    }
    assert (hand.period_end == hand.period_start.map({JUNE.start: JUNE.end, JULY.start: JULY.end})).all()


@pytest.mark.parametrize(
    ("period", "segment", "value", "start", "end", "new", "lost"),
    [
        (JUNE, "all", "all", 4, 4, 2, 2),  # start 1,2,3,6; new 4,5; lost 2,5; end 1,3,4,6
        (JULY, "all", "all", 4, 4, 1, 1),  # start 1,3,4,6; new 7; lost 3; end 1,4,6,7
        (JUNE, "plan", "basic", 2, 1, 1, 2),
        (JUNE, "plan", "pro", 2, 3, 1, 0),
        (JULY, "plan", "basic", 1, 2, 1, 0),
        (JULY, "plan", "pro", 3, 2, 0, 1),
    ],
)
def test_customer_counts_churn_and_retention(hand, period, segment, value, start, end, new, lost):
    r = row(hand, period, segment, value)
    assert (r.customers_start, r.customers_end, r.new_customers, r.lost_customers) == (start, end, new, lost)
    assert r.churn_rate_pct == pytest.approx(100 * lost / start)
    assert r.retention_rate_pct == pytest.approx(100 * (end - new) / start)


def test_revenue_churn(hand):
    june, july = row(hand, JUNE), row(hand, JULY)
    # June: paid in [05-02, 06-01) by 1 and 2 (10 each); 2 is lost
    assert (june.revenue_start, june.revenue_lost, june.revenue_churn_pct) == pytest.approx((20, 10, 50))
    # July: 1 (10), 3 (30), 6 (30 at 06-01 00:00); 3 is lost
    assert (july.revenue_start, july.revenue_lost, july.revenue_churn_pct) == pytest.approx(
        (70, 30, 100 * 30 / 70)
    )
    assert row(hand, JUNE, "plan", "pro").revenue_lost == 0  # nobody lost: zero, not null


def test_first_response_time(hand):
    june, july = row(hand, JUNE), row(hand, JULY)
    # June: 10, 20, 30, 40 (d's 120 min answer came after June ended); linear interpolation
    assert june.first_response_median_minutes == pytest.approx(25)
    assert june.first_response_p90_minutes == pytest.approx(30 + 0.7 * 10)
    assert july.first_response_median_minutes == pytest.approx(10)  # 5, 15
    assert july.first_response_p90_minutes == pytest.approx(5 + 0.9 * 10)


def test_first_contact_resolution(hand):
    # June judges g, a, b, c, e (7-day windows ending in June): g, b, e are resolved without a repeat
    assert row(hand, JUNE).first_contact_resolution_pct == pytest.approx(60)
    # July judges d (resolved, no repeat), f (repeated by h), h (unresolved)
    assert row(hand, JULY).first_contact_resolution_pct == pytest.approx(100 / 3)


def test_complaints(hand):
    june, july = row(hand, JUNE), row(hand, JULY)
    assert june.complaints == 3  # b, e, d
    assert june.complaints_per_100_customers == pytest.approx(75)
    assert june.complaint_resolution_median_hours == pytest.approx(36)  # b 48 h, e 24 h resolved in June
    assert (july.complaints, july.complaints_per_100_customers) == (0, 0)
    assert july.complaint_resolution_median_hours == pytest.approx(48)  # d, resolved on 07-02


def test_nps_and_non_respondents(hand):
    june, july = row(hand, JUNE), row(hand, JULY)
    assert june.nps_answers == 4
    assert june.nps == pytest.approx(100 * (2 - 1) / 4)  # promoters 10, 9; detractor 3; passive 7
    assert june.nps_non_respondent_pct == pytest.approx(50)  # of 1, 2, 3, 6 only 1 and 6 answered
    assert july.nps_answers == 2 and july.nps == pytest.approx(-100)
    assert july.nps_non_respondent_pct == pytest.approx(50)  # of 1, 3, 4, 6: 1 and 3 answered


def test_clv_from_value_column(hand):
    june, july = row(hand, JUNE), row(hand, JULY)
    # June: hazard 2/4 -> 2 months; mean fee at start (10, 10, 30, 30) = 20; margin 50%
    assert (june.monthly_churn_hazard, june.expected_lifetime_months) == pytest.approx((0.5, 2))
    assert june.clv == pytest.approx(0.5 * 20 * 2)
    # July: hazard over June and July (2 + 1) / (4 + 4); fee at start (10, 30, 30, 30) = 25
    assert july.monthly_churn_hazard == pytest.approx(3 / 8)
    assert july.clv == pytest.approx(0.5 * 25 * 8 / 3)
    # pro lost nobody in June: the lifetime is the cap
    pro = row(hand, JUNE, "plan", "pro")
    assert (pro.expected_lifetime_months, pro.clv) == pytest.approx((100, 0.5 * 30 * 100))


def test_clv_from_revenue_without_value_column():
    df = kpis(hand_made(), value_column=None)
    assert row(df, JUNE).clv == pytest.approx(0.5 * (20 / 4) * 2)  # revenue per customer at start


def test_weekly_hazard_is_turned_into_months():
    week = Period(dt.date(2024, 6, 10), dt.date(2024, 6, 17))  # a Monday to the next
    df = kpis(hand_made(), periods=[week], unit="week")
    r = row(df, week)
    # start 1, 2, 3, 6 (4 is new earlier, 5 signs up on 06-10); 2 churns on 06-15
    assert (r.customers_start, r.new_customers, r.lost_customers) == (5, 1, 1)
    assert r.monthly_churn_hazard == pytest.approx(1 - (1 - 1 / 5) ** WEEKS_PER_MONTH)
    assert r.expected_lifetime_months == pytest.approx(1 / r.monthly_churn_hazard)


def test_optional_tables_leave_their_kpis_null():
    df = kpis({"customers": hand_made()["customers"]}, value_column=None)
    june = row(df, JUNE)
    assert june.churn_rate_pct == pytest.approx(50)
    for c in (
        "revenue_start",
        "revenue_churn_pct",
        "first_response_median_minutes",
        "first_contact_resolution_pct",
        "complaints",
        "nps",
        "nps_non_respondent_pct",
        "clv",
    ):
        assert pd.isna(june[c]), c
    assert june.expected_lifetime_months == pytest.approx(2)


def test_segments_must_be_categorical_customer_columns():
    with pytest.raises(ConfigError, match=r"kpis.segments names 'tier'.*plan"):
        kpis(hand_made(), cfg=CFG.model_copy(update={"segments": ("tier",)}))
    with pytest.raises(ConfigError, match=r"customers.monthly_fee.*categorical"):
        kpis(hand_made(), cfg=CFG.model_copy(update={"segments": ("monthly_fee",)}))
    with pytest.raises(ConfigError, match=r"scoring.value_column 'plan'.*monthly_fee"):
        kpis(hand_made(), value_column="plan")


@pytest.mark.parametrize(
    ("data_end", "unit", "starts"),
    [
        ("2024-06-30", "month", ["2024-05-01", "2024-06-01", "2024-07-01"]),  # June ends with the data
        ("2024-06-29", "month", ["2024-04-01", "2024-05-01", "2024-06-01"]),  # June is not complete
        ("2025-01-05", "month", ["2024-11-01", "2024-12-01", "2025-01-01"]),  # across a year
        ("2024-06-16", "week", ["2024-06-03", "2024-06-10", "2024-06-17"]),  # a Sunday ends its week
        ("2024-06-15", "week", ["2024-05-27", "2024-06-03", "2024-06-10"]),
    ],
)
def test_complete_periods_end_on_or_before_the_data(data_end, unit, starts):
    """The two latest complete periods: `starts` are their starts and the end of the second."""
    days = [dt.date.fromisoformat(d) for d in starts]
    expected = [Period(days[0], days[1]), Period(days[1], days[2])]
    assert complete_periods(dt.date.fromisoformat(data_end), unit, 2) == expected


@pytest.mark.parametrize(("as_of", "unit"), [(dt.date(2024, 5, 31), "month"), (dt.date(2024, 7, 14), "week")])
def test_deleting_the_data_after_a_period_changes_none_of_its_kpis(as_of, unit):
    """The periods ending with `as_of`, with the full data (plus rows at the first instant after it) and with
    only what was known at its end (customers signed up later deleted too)."""
    full = with_boundary_rows(random_frames(seed=3, n_customers=120), as_of)
    known = as_known_at(full, as_of)
    c = known["customers"]
    known["customers"] = c[c["signup_date"] <= pd.Timestamp(as_of)].reset_index(drop=True)
    periods = complete_periods(as_of, unit, 3)
    assert periods[-1].end == as_of + dt.timedelta(days=1)
    cfg = KpiConfig(segments=("plan", "loyalty_member"), clv_hazard_periods=2)
    before = kpis(known, periods, cfg, unit)
    after = kpis(full, periods, cfg, unit)
    assert len(before) > 3 * len(periods)
    pd.testing.assert_frame_equal(before, after)
