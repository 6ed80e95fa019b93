"""Complaints: support contacts flagged `is_complaint`: volume per window, unresolved at t, recency.

A complaint is unresolved at t unless its `resolved_ts` is on or before t (same rule as open contacts);
without the optional `resolved_ts` column `unresolved_complaints` is dropped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis.expr.types as ir

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.features.base import (
    Metrics,
    count_where,
    days_since,
    has_columns,
    history_and_window,
    in_window,
    known_at,
    known_by,
    left_join_features,
    note_missing,
    when,
    within_window,
)


def complaint_count_metrics(known_contacts: ir.Table, as_of: dt.date, windows: Sequence[int]) -> Metrics:
    """complaints_<w>d per window."""
    c = known_contacts
    return {f"complaints_{w}d": count_where(c.is_complaint & in_window(c.ts, as_of, w)) for w in windows}


def last_complaint_metrics(known_contacts: ir.Table, as_of: dt.date) -> Metrics:
    """days_since_last_complaint (null if the customer never complained)."""
    c = known_contacts
    return {"days_since_last_complaint": days_since(as_of, when(c.is_complaint, c.ts).max())}


def unresolved_complaint_metrics(known_contacts: ir.Table, as_of: dt.date) -> Metrics:
    """unresolved_complaints: complaints opened by `as_of` and not resolved by it."""
    c = known_contacts
    return {"unresolved_complaints": count_where(c.is_complaint & ~known_by(c.resolved_ts, as_of))}


def complaint_history_metrics(known_contacts: ir.Table, as_of: dt.date) -> Metrics:
    """The complaint features that look at the whole history (the optional `resolved_ts` allowing)."""
    c = known_contacts
    metrics = dict(last_complaint_metrics(c, as_of))
    if has_columns(c, "resolved_ts"):
        metrics.update(unresolved_complaint_metrics(c, as_of))
    else:
        note_missing("support_contacts.resolved_ts", "unresolved_complaints")
    return metrics


def complaint_window_metrics(recent_contacts: ir.Table, as_of: dt.date, cfg: FeatureConfig) -> Metrics:
    """complaints_<w>d; `recent_contacts` may be every known contact or only those in the longest window."""
    return complaint_count_metrics(recent_contacts, as_of, cfg.windows)


def complaint_features(support_contacts: ir.Table, as_of: dt.date, cfg: FeatureConfig) -> ir.Table:
    """Per customer with contacts by `as_of`: the complaints family (window counts null without recent
    contacts; see `base.history_and_window`)."""
    known = known_at(support_contacts, as_of)
    recent = within_window(known, as_of, max(cfg.windows))
    history, window = history_and_window(
        known,
        recent,
        [complaint_history_metrics(known, as_of)],
        [complaint_window_metrics(recent, as_of, cfg)],
    )
    return left_join_features(history, [window])
