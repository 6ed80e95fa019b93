"""Payments: failed payments and paid amounts per window, and price rises seen in the paid amount.

Price rise: `customers.monthly_fee` is the fee at signup, so a rise shows only in what the customer pays.
`last_paid_amount` is the amount of the latest successful payment known at t; it is compared with the
latest successful payment made at least `PRICE_LOOKBACK_DAYS` days earlier (on or before t-90):
`price_change_pct = 100 * (last - earlier) / earlier`, null when there is no earlier payment (customers
younger than the lookback) or it was zero. `price_rise` is 1 when that change exceeds
`PRICE_RISE_MIN_PCT` percent, else 0 (also 0 when the change is unknown; `price_change_pct` keeps the
difference). If two successful payments share the latest instant, either amount may be taken.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.features.base import (
    Metrics,
    aggregate,
    count_where,
    in_window,
    known_at,
    latest_where,
    sum_where,
    ts_literal,
    window_start,
)

PRICE_LOOKBACK_DAYS = 90
PRICE_RISE_MIN_PCT = 1.0


def failed_payment_metrics(known_payments: ir.Table, as_of: dt.date, windows: Sequence[int]) -> Metrics:
    """failed_payments_<w>d per window."""
    p = known_payments
    failed = p.status == "failed"
    return {f"failed_payments_{w}d": count_where(failed & in_window(p.ts, as_of, w)) for w in windows}


def paid_amount_metrics(known_payments: ir.Table, as_of: dt.date, windows: Sequence[int]) -> Metrics:
    """paid_amount_<w>d: sum of successful payment amounts per window."""
    p = known_payments
    paid = p.status == "paid"
    return {f"paid_amount_{w}d": sum_where(p.amount, paid & in_window(p.ts, as_of, w)) for w in windows}


def price_change_metrics(known_payments: ir.Table, as_of: dt.date) -> Metrics:
    """last_paid_amount, price_change_pct and price_rise (see the module docstring)."""
    p = known_payments
    paid = p.status == "paid"
    # "On or before day t-N" = before the first instant of the N-day window ending at t (day t-N+1).
    earlier_end = ts_literal(window_start(as_of, PRICE_LOOKBACK_DAYS))
    last = latest_where(p.amount, p.ts, paid)
    earlier = latest_where(p.amount, p.ts, paid & (p.ts < earlier_end))
    change = (last - earlier) * 100.0 / earlier.nullif(0)
    return {
        "last_paid_amount": last,
        "price_change_pct": change,
        "price_rise": ibis.ifelse(change > PRICE_RISE_MIN_PCT, 1, 0),
    }


def payment_metrics(known_payments: ir.Table, as_of: dt.date, cfg: FeatureConfig) -> Metrics:
    """The payments family (failed, paid per window, price change)."""
    p = known_payments
    return {
        **failed_payment_metrics(p, as_of, cfg.windows),
        **paid_amount_metrics(p, as_of, cfg.windows),
        **price_change_metrics(p, as_of),
    }


def payment_features(payments: ir.Table, as_of: dt.date, cfg: FeatureConfig) -> ir.Table:
    """Per customer with payments by `as_of`: the payments family in one pass."""
    known = known_at(payments, as_of)
    return aggregate(known, payment_metrics(known, as_of, cfg))
