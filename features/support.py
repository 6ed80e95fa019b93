"""Support contacts: volume per window and channel, recency, response times, open contacts, CSAT.

Point-in-time rules (besides those of `base`):
- a contact is known at t when it was opened by the end of t (`ts`);
- its `response_minutes` is known only once the response happened: `ts + response_minutes <= end of t`;
- it is OPEN at t unless `resolved_ts` is on or before t (a later resolution is still in the future);
- its `csat` is known only if it was resolved by t (the score is given at resolution).
Without `resolved_ts` we cannot tell when a CSAT score became known, so CSAT features are dropped too.

Share resolved at first contact is NOT derived: the contract has no ticket/thread id linking a follow-up
contact to the one it follows up, so "resolved without a repeat contact" cannot be told apart from two
unrelated contacts. (A proxy such as "another contact within 7 days" would mostly measure contact volume,
which `contacts_<w>d` already carries.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis.expr.types as ir

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.features.base import (
    Metrics,
    count_where,
    cutoff,
    days_since,
    has_columns,
    history_and_window,
    in_window,
    known_at,
    known_by,
    left_join_features,
    note_missing,
    slug,
    ts_literal,
    when,
    within_window,
)


def contact_count_metrics(
    known_contacts: ir.Table, as_of: dt.date, windows: Sequence[int], channels: Sequence[str] = ()
) -> Metrics:
    """contacts_<w>d and contacts_<channel>_<w>d per window (all contacts, complaints included)."""
    c = known_contacts
    metrics: dict[str, ir.Value] = {}
    for w in windows:
        inside = in_window(c.ts, as_of, w)
        metrics[f"contacts_{w}d"] = count_where(inside)
        for channel in channels:
            metrics[f"contacts_{slug(channel)}_{w}d"] = count_where(inside & (c.channel == channel))
    return metrics


def last_contact_metrics(known_contacts: ir.Table, as_of: dt.date) -> Metrics:
    """days_since_last_contact."""
    return {"days_since_last_contact": days_since(as_of, known_contacts.ts.max())}


def response_known(known_contacts: ir.Table, as_of: dt.date) -> ir.BooleanValue:
    """The response to the contact had happened by the end of `as_of` (so its duration is known)."""
    c = known_contacts
    seconds = (c.response_minutes * 60).round().cast("int64")
    return c.response_minutes.notnull() & (c.ts + seconds.as_interval("s") < ts_literal(cutoff(as_of)))


def response_time_metrics(known_contacts: ir.Table, as_of: dt.date, windows: Sequence[int]) -> Metrics:
    """response_minutes_mean_<w>d / response_minutes_max_<w>d over contacts opened in the window whose
    response is known at `as_of`; null when there are none."""
    c = known_contacts
    answered = response_known(c, as_of)
    metrics: dict[str, ir.Value] = {}
    for w in windows:
        where = answered & in_window(c.ts, as_of, w)
        metrics[f"response_minutes_mean_{w}d"] = when(where, c.response_minutes).mean()
        metrics[f"response_minutes_max_{w}d"] = when(where, c.response_minutes).max()
    return metrics


def open_contact_metrics(known_contacts: ir.Table, as_of: dt.date) -> Metrics:
    """open_contacts: contacts opened by `as_of` and not resolved by it."""
    c = known_contacts
    return {"open_contacts": count_where(~known_by(c.resolved_ts, as_of))}


def csat_metrics(known_contacts: ir.Table, as_of: dt.date, windows: Sequence[int]) -> Metrics:
    """csat_mean_<w>d / csat_min_<w>d over contacts opened in the window, resolved by `as_of`, with a score."""
    c = known_contacts
    scored = known_by(c.resolved_ts, as_of) & c.csat.notnull()
    metrics: dict[str, ir.Value] = {}
    for w in windows:
        where = scored & in_window(c.ts, as_of, w)
        metrics[f"csat_mean_{w}d"] = when(where, c.csat).mean()
        metrics[f"csat_min_{w}d"] = when(where, c.csat).min()
    return metrics


def support_history_metrics(known_contacts: ir.Table, as_of: dt.date) -> Metrics:
    """The support features that look at the whole history: days since the last contact, open contacts."""
    c = known_contacts
    metrics = dict(last_contact_metrics(c, as_of))
    if has_columns(c, "resolved_ts"):
        metrics.update(open_contact_metrics(c, as_of))
    return metrics


def support_window_metrics(recent_contacts: ir.Table, as_of: dt.date, cfg: FeatureConfig) -> Metrics:
    """The windowed support features the contact table's columns allow (absent optional columns are logged).

    `recent_contacts` may be every known contact or only those in the longest window (`within_window`).
    """
    c = recent_contacts
    metrics = dict(contact_count_metrics(c, as_of, cfg.windows, cfg.support_channels))
    if has_columns(c, "response_minutes"):
        metrics.update(response_time_metrics(c, as_of, cfg.windows))
    else:
        note_missing("support_contacts.response_minutes", "the response-time features")
    if has_columns(c, "resolved_ts"):
        if has_columns(c, "csat"):
            metrics.update(csat_metrics(c, as_of, cfg.windows))
        else:
            note_missing("support_contacts.csat", "the CSAT features")
    else:
        note_missing(
            "support_contacts.resolved_ts",
            "open_contacts and the CSAT features (CSAT is known only once resolved)",
        )
    return metrics


def support_features(support_contacts: ir.Table, as_of: dt.date, cfg: FeatureConfig) -> ir.Table:
    """Per customer with contacts by `as_of`: the support family (window columns null without recent
    contacts; see `base.history_and_window`)."""
    known = known_at(support_contacts, as_of)
    recent = within_window(known, as_of, max(cfg.windows))
    history, window = history_and_window(
        known, recent, [support_history_metrics(known, as_of)], [support_window_metrics(recent, as_of, cfg)]
    )
    return left_join_features(history, [window])
