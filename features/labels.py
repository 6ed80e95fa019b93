"""Churn labels as of a date t (they look only AFTER t) and the rolling snapshot dates of a training set.

`label.kind = cancellation` (subscriptions): every customer active at t is labelled; label 1 iff their
`churn_date` falls in (t, t + horizon].

`label.kind = inactivity` (non-subscription businesses, where nobody cancels): a customer is "active" for
this kind when they are active at t in the customer sense (signed up by t, no churn_date on or before t)
AND had at least one event in the `inactivity_lookback_days` days ending at t (days t-L+1 .. t). Only
those customers are labelled; label 1 iff they have NO event in (t, t + horizon] (days t+1 .. t+h).
Who gets a label is decided by data up to t; the label itself only by data after t.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from churn_pipeline.core.config import LabelConfig, SnapshotConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.tables import SourceTables
from churn_pipeline.features.base import active_customers, cutoff, ts_literal, window_start


def labelled_customers(tables: SourceTables, as_of: dt.date, cfg: LabelConfig) -> ir.Table:
    """The customers that get a label at `as_of` (`customer_id` only); see the module docstring."""
    active = active_customers(tables.customers, as_of).select("customer_id")
    if cfg.kind == "cancellation":
        return active
    e = _events_for_inactivity(tables)
    recent = e.filter(
        (e.ts >= ts_literal(window_start(as_of, cfg.inactivity_lookback_days)))
        & (e.ts < ts_literal(cutoff(as_of)))
    )
    return active.semi_join(recent.select("customer_id").distinct(), "customer_id")


def churn_labels(tables: SourceTables, as_of: dt.date, cfg: LabelConfig) -> ir.Table:
    """`customer_id`, `label` (int8: 1 = churned within the horizon after `as_of`) for every labelled customer."""
    t = ibis.date(as_of)
    horizon_end = as_of + dt.timedelta(days=cfg.horizon_days)
    if cfg.kind == "cancellation":
        c = active_customers(tables.customers, as_of)
        churned = c.churn_date.notnull() & (c.churn_date <= ibis.date(horizon_end)) & (c.churn_date > t)
        return c.select("customer_id", label=churned.cast("int8"))
    population = labelled_customers(tables, as_of, cfg)
    e = _events_for_inactivity(tables)
    after = e.filter((e.ts >= ts_literal(cutoff(as_of))) & (e.ts < ts_literal(cutoff(horizon_end))))
    returned = after.select("customer_id").distinct().mutate(_returned=ibis.literal(1, type="int8"))
    joined = population.left_join(returned, "customer_id")
    return joined.select("customer_id", label=joined._returned.isnull().cast("int8"))


def _events_for_inactivity(tables: SourceTables) -> ir.Table:
    if tables.events is None:
        raise ConfigError(
            "label.kind=inactivity needs an events table to tell who stopped being active, and the data source "
            "has none; add events or use label.kind=cancellation"
        )
    return tables.events


def snapshot_dates(data_end: dt.date, label: LabelConfig, snapshots: SnapshotConfig) -> list[dt.date]:
    """Training snapshot dates, ascending; the last is `data_end - horizon`, so every label is fully observed."""
    last = data_end - dt.timedelta(days=label.horizon_days)
    return [last - dt.timedelta(days=snapshots.spacing_days * i) for i in reversed(range(snapshots.count))]
