"""Recency and tenure on hand-made tables (as of 2024-06-30, end of day)."""

from __future__ import annotations

import datetime as dt

from churn_pipeline.features import recency
from tests.features.synthetic import AS_OF, customers, frame, rows_by_customer, source


def test_days_since_last_event_any_and_per_important_type() -> None:
    events = frame(
        "customer_id ts event_type",
        [
            (1, "2024-06-20 08:00", "login"),
            (1, "2024-06-29 23:59:59", "purchase"),
            (1, "2024-07-01 00:00", "login"),  # first instant after t: unknown at t
            (2, "2024-03-01 12:00", "error"),
        ],
    )
    rows = rows_by_customer(
        recency.days_since_last_event(source(events=events).tables.events, AS_OF, ("login", "purchase"))
    )
    assert rows[1]["days_since_last_event"] == 1
    assert rows[1]["days_since_last_login"] == 10
    assert rows[1]["days_since_last_purchase"] == 1
    assert rows[2]["days_since_last_event"] == (AS_OF - dt.date(2024, 3, 1)).days
    assert rows[2]["days_since_last_login"] is None
    assert 3 not in rows  # no events: not in the family table (build.py leaves it null)


def test_event_on_the_as_of_day_is_zero_days_ago() -> None:
    events = frame("customer_id ts event_type", [(1, "2024-06-30 23:59:59", "login")])
    rows = rows_by_customer(recency.days_since_last_event(source(events=events).tables.events, AS_OF))
    assert rows[1]["days_since_last_event"] == 0


def test_tenure_days_of_active_customers_only() -> None:
    cust = customers(
        (1, "2024-01-01", None),
        (2, "2024-06-30", None),  # signed up on t: tenure 0
        (3, "2024-01-01", "2024-06-15"),  # churned before t: not active
        (4, "2024-07-02", None),  # signs up after t
        (5, "2024-02-01", "2024-07-10"),  # churns after t: still active at t
    )
    rows = rows_by_customer(recency.tenure_days(source(customers=cust).tables.customers, AS_OF))
    assert set(rows) == {1, 2, 5}
    # Jan 31 + Feb 29 + Mar 31 + Apr 30 + May 31 + Jun 29 (2024 is a leap year)
    assert rows[1]["tenure_days"] == 181
    assert rows[2]["tenure_days"] == 0
    assert rows[5]["tenure_days"] == (AS_OF - dt.date(2024, 2, 1)).days


def test_days_since_last_payment_counts_successful_payments_only() -> None:
    payments = frame(
        "customer_id ts amount status",
        [
            (1, "2024-06-01 10:00", 50.0, "paid"),
            (1, "2024-06-28 10:00", 50.0, "failed"),
            (1, "2024-07-01 00:00", 50.0, "paid"),  # after t
            (2, "2024-06-30 09:00", 20.0, "failed"),
        ],
    )
    rows = rows_by_customer(recency.days_since_last_payment(source(payments=payments).tables.payments, AS_OF))
    assert rows[1]["days_since_last_payment"] == 29
    assert rows[2]["days_since_last_payment"] is None
