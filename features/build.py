"""The feature table: every family, as of one date, for every active customer, as one ibis expression.

Families reading the same source table share its group-by passes (support_contacts: support +
complaints, one pass over the whole history and one over the longest window; payments: recency +
payments + price in one pass), then are left-joined onto the customers active at the as-of date (which
carry tenure and the static attributes). A customer without rows in a table gets the catalog's
default for that feature (0 for counts, sums and flags) or null (recency, means, ratios: LightGBM treats
null as missing). Absent optional tables drop their families with a log line.

Column types: counts and flags are int64, every other number float64, categorical attributes strings.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import ibis
import ibis.expr.types as ir

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.tables import SourceTables
from churn_pipeline.features import (
    activity,
    attributes,
    complaints,
    frequency,
    payments,
    recency,
    support,
    surveys,
)
from churn_pipeline.features.base import (
    active_customers,
    aggregate,
    history_and_window,
    known_at,
    left_join_features,
    note_missing,
    within_window,
)
from churn_pipeline.features.catalog import default_value

# Bump when a feature's definition changes, so cached training sets built with the old one are not reused.
FEATURE_SET_VERSION = "2"  # 2: the frequency family and the BG/NBD columns


def customer_table(tables: SourceTables, as_of: dt.date, cfg: FeatureConfig) -> ir.Table:
    """The customers active at `as_of` with the features read off the customers row (tenure, attributes)."""
    active = active_customers(tables.customers, as_of)
    tenure = recency.tenure_columns(active, as_of)
    attrs = attributes.attribute_columns(active, cfg)
    _check_unique([*tenure, *attrs])
    return active.select("customer_id", **tenure, **attrs)


def _check_unique(names: list[str]) -> None:
    duplicated = sorted(n for n, k in Counter(names).items() if k > 1)
    if duplicated:
        raise ConfigError(
            f"feature name(s) {duplicated} would be produced twice: a customer attribute column or a configured "
            f"event type/channel collides with a built-in feature; rename the column or list it in "
            f"features.exclude_attributes"
        )


def family_tables(tables: SourceTables, as_of: dt.date, cfg: FeatureConfig) -> list[ir.Table]:
    """One table keyed by customer_id per pass over a behaviour table (not yet restricted to active customers).

    Events and support contacts get two passes each: the few whole-history metrics (recency, open
    contacts) over every known row, the many windowed ones over the rows of the longest window only
    (`base.history_and_window` says why). One fused pass evaluates every windowed condition on the
    whole history and keeps every aggregate's state for every customer who ever had a row: measured
    ~30% slower for events and 2x slower for support contacts at 1M customers.
    """
    parts: list[ir.Table] = []
    if tables.events is not None:
        parts.append(recency.days_since_last_event(tables.events, as_of, cfg.important_event_types))
        parts.append(activity.activity_features(tables.events, as_of, cfg))
        if (
            cfg.frequency is not False
        ):  # None (a FeatureConfig on its own): built; Config resolves it by label
            parts.append(frequency.frequency_features(tables.events, as_of))
    else:
        note_missing("events table", "the recency (days since last event), activity and frequency families")
    if tables.support_contacts is not None:
        known = known_at(tables.support_contacts, as_of)
        recent = within_window(known, as_of, max(cfg.windows))
        parts += history_and_window(
            known,
            recent,
            [
                support.support_history_metrics(known, as_of),
                complaints.complaint_history_metrics(known, as_of),
            ],
            [
                support.support_window_metrics(recent, as_of, cfg),
                complaints.complaint_window_metrics(recent, as_of, cfg),
            ],
        )
    else:
        note_missing("support_contacts table", "the support and complaints families")
    if tables.surveys is not None:
        parts.append(surveys.nps_answers(tables.surveys, as_of))
    else:
        note_missing("surveys table", "the surveys family")
    if tables.payments is not None:
        known = known_at(tables.payments, as_of)
        parts.append(
            aggregate(
                known, recency.last_payment_metrics(known, as_of), payments.payment_metrics(known, as_of, cfg)
            )
        )
    else:
        note_missing("payments table", "days_since_last_payment and the payments and price families")
    return parts


def feature_table(tables: SourceTables, as_of: dt.date, cfg: FeatureConfig) -> ir.Table:
    """One row per customer active at the end of `as_of`: `customer_id`, then every feature column."""
    base = customer_table(tables, as_of, cfg)
    parts = family_tables(tables, as_of, cfg)
    names = [c for part in [base, *parts] for c in part.columns if c != "customer_id"]
    _check_unique(names)
    out = left_join_features(base, parts)
    columns: dict[str, ir.Value] = {}
    for name in names:
        col = out[name]
        default = default_value(name)
        target = "int64" if isinstance(default, int) else "float64"
        # cast before coalescing: ibis drops a cast to the type it already infers for COALESCE, while the
        # backend may type the column narrower (DuckDB: CASE of 1/0 is INTEGER)
        if col.type().is_numeric() or col.type().is_boolean():
            col = col.cast(target)
        if default is not None:
            col = col.coalesce(ibis.literal(default, type=target))
        columns[name] = col
    return out.select("customer_id", **columns)


def categorical_features(table: ir.Table) -> list[str]:
    """Feature columns of a feature table that are categories (string-typed)."""
    return [name for name, dtype in table.schema().items() if name != "customer_id" and dtype.is_string()]
