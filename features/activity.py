"""Product activity: event counts and active days per window, per-type counts, engagement trends, spend.

Windows end at the as-of date (`base` conventions): `events_30d` counts events on the 30 days t-29 .. t.
Trend ratios compare per-day event rates, so 1.0 = steady, 0.4 = activity fell by 60%:
- `events_trend_30_vs_prev60`: last 30 days vs the 60 days before them (days t-89 .. t-30);
- `events_trend_7_vs_30`: last 7 days vs the last 30 days (which include the 7).
A ratio is null when the comparison period had no events (no baseline to fall from), never infinite.
The trend spans are fixed (they do not follow `FeatureConfig.windows`) so their meaning never changes.

One pass over the events of the last `activity_span_days` days (a fraction of a long history): each row's
age in days (0 = the as-of day) is computed once and every window is a condition on it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis.expr.types as ir

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.features.base import (
    Metrics,
    aggregate,
    bit_or,
    count_where,
    day_bit_words,
    days_set,
    days_since,
    has_columns,
    known_at,
    note_missing,
    rate_ratio,
    slug,
    sum_where,
    within_window,
)

# (name, recent days, comparison newest-days-ago, comparison oldest-days-ago)
TRENDS: tuple[tuple[str, int, int, int], ...] = (
    ("events_trend_30_vs_prev60", 30, 30, 90),
    ("events_trend_7_vs_30", 7, 0, 30),
)


def activity_span_days(cfg: FeatureConfig) -> int:
    """How far back any activity feature looks: the longest window or trend span."""
    return max(*cfg.windows, *(oldest for _, _, _, oldest in TRENDS))


def recent_events(events: ir.Table, as_of: dt.date, span_days: int) -> ir.Table:
    """Events of the `span_days` days ending at `as_of`, with `age` = whole days before as_of (0..span-1)."""
    recent = within_window(known_at(events, as_of), as_of, span_days)
    return recent.mutate(age=days_since(as_of, recent.ts))


def _events_within(recent: ir.Table, days: int) -> ir.Value:
    # one expression per window, shared by counts and trends, so the backend computes it once
    return count_where(recent.age < days)


def event_count_metrics(recent: ir.Table, windows: Sequence[int], event_types: Sequence[str] = ()) -> Metrics:
    """events_<w>d per window, and events_<type>_<w>d per configured event type and window."""
    r = recent
    metrics: dict[str, ir.Value] = {}
    for w in windows:
        metrics[f"events_{w}d"] = _events_within(r, w)
        for event_type in event_types:
            metrics[f"events_{slug(event_type)}_{w}d"] = count_where(
                (r.age < w) & (r.event_type == event_type)
            )
    return metrics


def active_day_metrics(recent: ir.Table, windows: Sequence[int]) -> Metrics:
    """active_days_<w>d: distinct calendar days with at least one event, per window (`base.day_bit_words`)."""
    words = [bit_or(word) for word in day_bit_words(recent.age, max(windows))]
    return {f"active_days_{w}d": days_set(words, w) for w in windows}


def trend_metrics(recent: ir.Table) -> Metrics:
    """Engagement trend ratios (see the module docstring); `recent` must span at least 90 days."""
    metrics: dict[str, ir.Value] = {}
    for name, recent_days, newest, oldest in TRENDS:
        last_oldest = _events_within(recent, oldest)
        before = last_oldest - _events_within(recent, newest) if newest else last_oldest
        metrics[name] = rate_ratio(_events_within(recent, recent_days), recent_days, before, oldest - newest)
    return metrics


def spend_metrics(recent: ir.Table, windows: Sequence[int]) -> Metrics:
    """spend_<w>d: sum of event `amount` (purchases) per window; needs the optional `amount` column."""
    return {f"spend_{w}d": sum_where(recent.amount, recent.age < w) for w in windows}


def activity_metrics(recent: ir.Table, cfg: FeatureConfig) -> Metrics:
    """Every activity feature the events table's columns allow (spend needs the optional `amount`)."""
    metrics = {
        **event_count_metrics(recent, cfg.windows, cfg.event_types),
        **active_day_metrics(recent, cfg.windows),
        **trend_metrics(recent),
    }
    if has_columns(recent, "amount"):
        metrics.update(spend_metrics(recent, cfg.windows))
    else:
        note_missing("events.amount", "the spend features")
    return metrics


def activity_features(events: ir.Table, as_of: dt.date, cfg: FeatureConfig) -> ir.Table:
    """Per customer with events in the last `activity_span_days` days: the activity family in one pass.

    Customers without recent events are absent (the feature table gives them 0 counts, null trends);
    recency, which needs the whole history but only maxima, is a separate pass (`recency`).
    """
    recent = recent_events(events, as_of, activity_span_days(cfg))
    return aggregate(recent, activity_metrics(recent, cfg))
