"""Recency and tenure: how long since the customer last did something, and how long they have been a customer.

Days are whole calendar days from the event's date to the as-of date (0 = on the as-of day). A customer
with no such row before the as-of date gets null (LightGBM treats it as missing; the catalog says
"no ... recorded"), never a made-up sentinel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis.expr.types as ir

from churn_pipeline.features.base import (
    Metrics,
    active_customers,
    aggregate,
    days_since,
    known_at,
    slug,
    when,
)


def last_event_metrics(
    known_events: ir.Table, as_of: dt.date, important_event_types: Sequence[str] = ()
) -> Metrics:
    """days_since_last_event, and days_since_last_<type> for each important event type.

    `known_events` are the events known at `as_of` (`base.known_at`).
    """
    e = known_events
    metrics: dict[str, ir.Value] = {"days_since_last_event": days_since(as_of, e.ts.max())}
    for event_type in important_event_types:
        metrics[f"days_since_last_{slug(event_type)}"] = days_since(
            as_of, when(e.event_type == event_type, e.ts).max()
        )
    return metrics


def last_payment_metrics(known_payments: ir.Table, as_of: dt.date) -> Metrics:
    """days_since_last_payment: days since the last SUCCESSFUL payment (failed attempts do not count)."""
    p = known_payments
    return {"days_since_last_payment": days_since(as_of, when(p.status == "paid", p.ts).max())}


def days_since_last_event(
    events: ir.Table, as_of: dt.date, important_event_types: Sequence[str] = ()
) -> ir.Table:
    """Per customer with any event by `as_of`: days since the last event (and per important type)."""
    known = known_at(events, as_of)
    return aggregate(known, last_event_metrics(known, as_of, important_event_types))


def days_since_last_payment(payments: ir.Table, as_of: dt.date) -> ir.Table:
    """Per customer with any payment by `as_of`: days since the last successful payment (null if none)."""
    known = known_at(payments, as_of)
    return aggregate(known, last_payment_metrics(known, as_of))


def tenure_columns(active: ir.Table, as_of: dt.date) -> Metrics:
    """tenure_days: days since signup (0 = signed up on the as-of day), as a column of `active` customers."""
    return {"tenure_days": days_since(as_of, active.signup_date)}


def tenure_days(customers: ir.Table, as_of: dt.date) -> ir.Table:
    """Per customer active at `as_of`: days since signup."""
    active = active_customers(customers, as_of)
    return active.select("customer_id", **tenure_columns(active, as_of))
