"""Retention and service KPIs per calendar period and customer segment (`churn kpis`), as one ibis expression.

A period is `[start, end)`: a calendar month, or an ISO week (Monday to Sunday). Every KPI of a period uses
only what was known at its end (timestamps `< end`, dates `< end`), so deleting all data after a period's
end changes none of its KPIs. Customers are counted with the activity rule of the features
(`base.active_customers`): active at the end of day `t` iff `signup_date <= t` and `churn_date` is null or
after `t`. So "at start" = active at the end of the day before `start`, "at end" = active at the end of the
period's last day.

Per period and segment (`segment` = 'all', or a configured customer column, `segment_value` its value):

- `customers_start`, `customers_end`: active at start / at end.
- `new_customers`: `signup_date` in the period. `lost_customers`: `churn_date` in the period (customers who
  sign up and leave within one period count in both), so `customers_end = customers_start + new - lost`.
- `churn_rate_pct = 100 x lost / customers_start`;
  `retention_rate_pct = 100 x (customers_end - new) / customers_start` (= 100 - churn rate by the identity).
- Revenue (needs `payments`): a customer's monthly revenue at start is what they paid (status `paid`) in the
  `REVENUE_WINDOW_DAYS` days before `start`. `revenue_start` sums it over the customers at start,
  `revenue_lost` over those of them lost in the period; `revenue_churn_pct = 100 x revenue_lost / revenue_start`.
- Support (needs `support_contacts`): `first_response_median_minutes` / `first_response_p90_minutes` over
  contacts opened in the period whose response had happened by its end (`ts + response_minutes < end`;
  linear interpolation between answers). `complaints` opened in the period, and
  `complaints_per_100_customers = 100 x complaints / customers_start`. `complaint_resolution_median_hours`:
  median hours from opening to resolution of the complaints RESOLVED in the period.
- `first_contact_resolution_pct`: the contract has no ticket id, so a contact counts as resolved at first
  contact when it was resolved within `FCR_REPEAT_DAYS` days of opening and the same customer opened no
  other contact in those days (the usual "no repeat contact" definition). A contact is judged when its
  follow-up window closes, so the period's contacts are those whose window ends in it (opened in
  `[start - 7 days, end - 7 days)`): each contact is judged exactly once, with data before `end` only.
  Null without `resolved_ts`.
- Surveys: `nps = 100 x (promoters (9-10) - detractors (0-6)) / answers` over the answers given in the
  period (`nps_answers`); `nps_non_respondent_pct`: share of the customers at start who gave no answer in it.
- CLV: `clv = margin_pct / 100 x monthly value per customer x expected remaining lifetime (months)`, where
  the monthly value is the mean of `value_column` (e.g. `monthly_fee`) over the customers at start, or without
  one the revenue per customer at start (`revenue_start / customers_start`); the lifetime is
  `min(1 / monthly hazard, clv_max_months)`, and the monthly hazard is the segment's
  `sum(lost) / sum(customers_start)` over its last `clv_hazard_periods` periods up to this one (weeks
  turned into months: `1 - (1 - h_week)^(365.25 / 12 / 7)`). Assumed: a constant hazard (a geometric
  lifetime, whose mean remaining length is 1 / hazard whatever the tenure), a constant monthly value, no
  discounting, and no value from customers acquired later.

Columns missing from the source (optional tables or columns) leave their KPIs null; the columns are always
the same (`KPI_COLUMNS`). Ratios over an empty denominator are null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import ibis
import ibis.expr.types as ir
import pandas as pd

from churn_pipeline.core.config import KpiConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.tables import SourceTables
from churn_pipeline.features.attributes import RESERVED_COLUMNS
from churn_pipeline.features.base import count_where, has_columns, note_missing, sum_where, when

REVENUE_WINDOW_DAYS = 30
FCR_REPEAT_DAYS = 7
PROMOTER_MIN_NPS = 9
DETRACTOR_MAX_NPS = 6
WEEKS_PER_MONTH = 365.25 / 12 / 7
ALL = "all"
MISSING_VALUE = "(missing)"

KEYS = ("period_start", "segment", "segment_value")
KPI_COLUMNS = (
    "period_start",
    "period_end",
    "segment",
    "segment_value",
    "customers_start",
    "customers_end",
    "new_customers",
    "lost_customers",
    "churn_rate_pct",
    "retention_rate_pct",
    "revenue_start",
    "revenue_lost",
    "revenue_churn_pct",
    "first_response_median_minutes",
    "first_response_p90_minutes",
    "first_contact_resolution_pct",
    "complaints",
    "complaints_per_100_customers",
    "complaint_resolution_median_hours",
    "nps",
    "nps_answers",
    "nps_non_respondent_pct",
    "monthly_churn_hazard",
    "expected_lifetime_months",
    "clv",
)

PeriodUnit = Literal["month", "week"]


@dataclass(frozen=True)
class Period:
    """One KPI period `[start, end)`."""

    start: dt.date
    end: dt.date


def _period_start(day: dt.date, unit: PeriodUnit) -> dt.date:
    return day.replace(day=1) if unit == "month" else day - dt.timedelta(days=day.weekday())


def _next_start(start: dt.date, unit: PeriodUnit) -> dt.date:
    if unit == "week":
        return start + dt.timedelta(days=7)
    return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)


def _previous_start(start: dt.date, unit: PeriodUnit) -> dt.date:
    return _period_start(start - dt.timedelta(days=1), unit)


def complete_periods(data_end: dt.date, unit: PeriodUnit, count: int) -> list[Period]:
    """The `count` latest periods whose last day is on or before `data_end` (complete in the data), ascending."""
    start = _period_start(data_end + dt.timedelta(days=1), unit)  # the first period NOT complete
    periods = []
    for _ in range(count):
        start = _previous_start(start, unit)
        periods.append(Period(start, _next_start(start, unit)))
    return periods[::-1]


def segment_columns_checked(customers: ir.Table, segments: Sequence[str]) -> None:
    """Raise ConfigError unless every segment is a categorical (string or boolean) customer column."""
    schema = customers.schema()
    attributes = [c for c in schema.names if c not in RESERVED_COLUMNS]
    for name in segments:
        if name not in schema:
            raise ConfigError(
                f"kpis.segments names '{name}', which is not a column of customers; its attribute columns are: "
                f"{', '.join(attributes) or 'none'}"
            )
        dtype = schema[name]
        if not (dtype.is_string() or dtype.is_boolean()):
            raise ConfigError(
                f"kpis.segments names customers.{name}, of type {dtype}: segments must be categorical (text or "
                f"boolean) columns; remove it from kpis.segments or choose one of "
                f"{', '.join(c for c in attributes if schema[c].is_string() or schema[c].is_boolean()) or 'none'}"
            )


def value_column_checked(customers: ir.Table, value_column: str | None) -> None:
    """Raise ConfigError unless `value_column` (scoring.value_column) is None or a numeric customer column."""
    if value_column is None:
        return
    schema = customers.schema()
    if value_column not in schema or not schema[value_column].is_numeric():
        numeric = [c for c in schema.names if c not in RESERVED_COLUMNS and schema[c].is_numeric()]
        raise ConfigError(
            f"scoring.value_column {value_column!r} (the monthly value of the CLV) is not a numeric column of "
            f"customers; numeric columns: {', '.join(numeric) or 'none'} (or set value_column: null to use the "
            f"revenue in payments)"
        )


def _periods_table(periods: Sequence[Period]) -> ir.Table:
    frame = pd.DataFrame(
        {
            "period_start": pd.to_datetime([p.start for p in periods]),
            "period_end": pd.to_datetime([p.end for p in periods]),
        }
    )
    t = ibis.memtable(frame)
    return t.select(
        period_start=t.period_start.cast("date"),
        period_end=t.period_end.cast("date"),
        _start_ts=t.period_start.cast("timestamp"),
        _end_ts=t.period_end.cast("timestamp"),
    )


def _during(ts: ir.TimestampValue, periods: ir.Table) -> ir.BooleanValue:
    return (ts >= periods._start_ts) & (ts < periods._end_ts)


def customer_segments(customers: ir.Table, segments: Sequence[str]) -> ir.Table:
    """customer_id, signup_date, segment, segment_value: one row per customer for 'all' and per segment."""
    c = customers
    parts = [
        c.select("customer_id", "signup_date", segment=ibis.literal(ALL), segment_value=ibis.literal(ALL))
    ]
    for name in segments:
        value = c[name].cast("string").fill_null(MISSING_VALUE)
        parts.append(c.select("customer_id", "signup_date", segment=ibis.literal(name), segment_value=value))
    return ibis.union(*parts, distinct=False)


def customer_periods(tables: SourceTables, periods: ir.Table, value_column: str | None = None) -> ir.Table:
    """Per customer known at a period's end (signed up before it) and period: the flags the counts are made of
    (at_start, at_end, new, lost), `answered` (a survey answer in the period), `revenue` (paid in the
    `REVENUE_WINDOW_DAYS` days before the start; null without payments) and `value` (the `value_column`)."""
    c = tables.customers
    p = periods
    joined = c.cross_join(p).filter(c.signup_date < p.period_end)
    start, end = joined.period_start, joined.period_end
    churn = joined.churn_date
    value = joined[value_column].cast("float64") if value_column else ibis.null("float64")
    cp = joined.select(
        "customer_id",
        "period_start",
        "period_end",
        at_start=(joined.signup_date < start) & (churn.isnull() | (churn >= start)),
        at_end=churn.isnull() | (churn >= end),
        new=joined.signup_date >= start,
        lost=churn.notnull() & (churn >= start) & (churn < end),
        value=value,
    )
    keys = ["customer_id", "period_start"]
    if tables.surveys is not None:
        s = tables.surveys
        answered = (
            s.inner_join(p, _during(s.ts, p))
            .select("customer_id", "period_start")
            .distinct()
            .mutate(_answered=ibis.literal(True))
        )
        cp = _left_join(cp, answered, keys)
    else:
        cp = cp.mutate(_answered=ibis.null("boolean"))
    if has_columns(tables.payments, "amount", "status"):
        pay = tables.payments
        paid = pay.filter(pay.status == "paid")
        window_start = p._start_ts - ibis.interval(days=REVENUE_WINDOW_DAYS)
        revenue = (
            paid.inner_join(p, (paid.ts >= window_start) & (paid.ts < p._start_ts))
            .group_by("customer_id", "period_start")
            .aggregate(_revenue=lambda t: t.amount.sum())
        )
        cp = _left_join(cp, revenue, keys)
        cp = cp.mutate(revenue=cp._revenue.fill_null(0.0)).drop("_revenue")
    else:
        cp = cp.mutate(revenue=ibis.null("float64"))
    return cp.mutate(answered=cp._answered.notnull()).drop("_answered")


def _left_join(base: ir.Table, part: ir.Table, keys: Sequence[str]) -> ir.Table:
    """`base` with `part`'s other columns left-joined on equal `keys`."""
    joined = base.left_join(part, [base[k] == part[k] for k in keys])
    return joined.select(*[base[c] for c in base.columns], *[part[c] for c in part.columns if c not in keys])


def _by_segment(rows: ir.Table, segments: ir.Table, **metrics) -> ir.Table:
    """Aggregate per-period rows (customer_id, period_start, period_end, ...) per period and segment; each
    metric is a function of the joined table. Only customers signed up before the period's end count."""
    j = rows.inner_join(
        segments, [rows.customer_id == segments.customer_id, segments.signup_date < rows.period_end]
    )
    return j.group_by(*KEYS).aggregate(**{name: f(j) for name, f in metrics.items()})


def _customer_counts(cp: ir.Table, segments: ir.Table) -> ir.Table:
    return _by_segment(
        cp,
        segments,
        period_end=lambda t: t.period_end.max(),
        customers_start=lambda t: count_where(t.at_start),
        customers_end=lambda t: count_where(t.at_end),
        new_customers=lambda t: count_where(t.new),
        lost_customers=lambda t: count_where(t.lost),
        _respondents_at_start=lambda t: count_where(t.at_start & t.answered),
        revenue_start=lambda t: sum_where(t.revenue, t.at_start),
        revenue_lost=lambda t: sum_where(t.revenue, t.at_start & t.lost),
        _value_start=lambda t: when(t.at_start, t.value).mean(),
    )


def _support_kpis(contacts: ir.Table, periods: ir.Table, segments: ir.Table) -> ir.Table:
    """Response times and complaints of the contacts opened in each period."""
    c = contacts.inner_join(periods, _during(contacts.ts, periods))
    metrics = {"complaints": lambda t: count_where(t.is_complaint)}
    if has_columns(contacts, "response_minutes"):
        seconds = (c.response_minutes * 60).round().cast("int64")
        c = c.mutate(
            _response=when(
                c.response_minutes.notnull() & (c.ts + seconds.as_interval("s") < c._end_ts),
                c.response_minutes,
            )
        )
        metrics["first_response_median_minutes"] = lambda t: t._response.median()
        metrics["first_response_p90_minutes"] = lambda t: t._response.quantile(0.9)
    else:
        note_missing("support_contacts.response_minutes", "the first-response KPIs")
    return _by_segment(c, segments, **metrics)


def _first_contact_resolution(contacts: ir.Table, periods: ir.Table, segments: ir.Table) -> ir.Table:
    """first_contact_resolution_pct over the contacts whose follow-up window closes in each period."""
    k = contacts
    following = ibis.window(group_by=k.customer_id, order_by=k.ts)
    k = k.mutate(_next_ts=k.ts.lead().over(following), _window_end=k.ts + ibis.interval(days=FCR_REPEAT_DAYS))
    c = k.inner_join(periods, _during(k._window_end, periods))
    resolved = c.resolved_ts.notnull() & (c.resolved_ts < c._window_end)
    repeated = c._next_ts.notnull() & (c._next_ts < c._window_end)
    c = c.mutate(_fcr=(resolved & ~repeated).cast("float64"))
    return _by_segment(c, segments, first_contact_resolution_pct=lambda t: t._fcr.mean() * 100)


def _complaint_resolution(contacts: ir.Table, periods: ir.Table, segments: ir.Table) -> ir.Table:
    """complaint_resolution_median_hours over the complaints resolved in each period."""
    k = contacts.filter(contacts.is_complaint & contacts.resolved_ts.notnull())
    c = k.inner_join(periods, _during(k.resolved_ts, periods))
    # float before dividing: DuckDB would divide the integer seconds as a DECIMAL, rounded to 6 places
    seconds = (c.resolved_ts.epoch_seconds() - c.ts.epoch_seconds()).cast("float64")
    c = c.mutate(_hours=seconds / 3600.0)
    return _by_segment(c, segments, complaint_resolution_median_hours=lambda t: t._hours.median())


def _nps(surveys: ir.Table, periods: ir.Table, segments: ir.Table) -> ir.Table:
    c = surveys.inner_join(periods, _during(surveys.ts, periods))
    return _by_segment(
        c,
        segments,
        nps_answers=lambda t: t.count(),
        _promoters=lambda t: count_where(t.nps >= PROMOTER_MIN_NPS),
        _detractors=lambda t: count_where(t.nps <= DETRACTOR_MAX_NPS),
    )


def _pct(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    return numerator.cast("float64") * 100.0 / denominator.cast("float64").nullif(0)


def retention_kpis(
    tables: SourceTables,
    periods: Sequence[Period],
    cfg: KpiConfig,
    unit: PeriodUnit | None = None,
    value_column: str | None = None,
) -> ir.Table:
    """The KPIs (`KPI_COLUMNS`, see the module docstring) of every period in `periods` (consecutive, ascending)
    per segment, for the segments with a customer known at the period's end. `unit` defaults to `cfg.period`;
    `value_column` is the customer column of monthly value for the CLV (default: the revenue per customer)."""
    if not periods:
        raise ValueError("no periods to compute KPIs for")
    unit = unit or cfg.period
    segment_columns_checked(tables.customers, cfg.segments)
    value_column_checked(tables.customers, value_column)
    p = _periods_table(periods)
    segments = customer_segments(tables.customers, cfg.segments)
    cp = customer_periods(tables, p, value_column)
    out = _customer_counts(cp, segments)
    c = tables.support_contacts
    if c is not None:
        out = _left_join(out, _support_kpis(c, p, segments), KEYS)
        if has_columns(c, "resolved_ts"):
            out = _left_join(out, _first_contact_resolution(c, p, segments), KEYS)
            out = _left_join(out, _complaint_resolution(c, p, segments), KEYS)
        else:
            note_missing(
                "support_contacts.resolved_ts", "first-contact resolution and complaint resolution time"
            )
    else:
        note_missing("support_contacts", "the support KPIs")
    if tables.surveys is not None:
        out = _left_join(out, _nps(tables.surveys, p, segments), KEYS)
    else:
        note_missing("surveys", "the NPS KPIs")
    if tables.payments is None:
        note_missing("payments", "the revenue KPIs (and the revenue-based CLV without scoring.value_column)")
    return _finish(out, cfg, unit, value_column is not None)


def _column(t: ir.Table, name: str, dtype: str) -> ir.Value:
    return t[name] if name in t.columns else ibis.null(dtype)


def _finish(t: ir.Table, cfg: KpiConfig, unit: PeriodUnit, has_value_column: bool) -> ir.Table:
    """The ratios, NPS and CLV from the per-segment counts, in `KPI_COLUMNS` order."""
    window = ibis.window(
        group_by=[t.segment, t.segment_value],
        order_by=t.period_start,
        preceding=cfg.clv_hazard_periods - 1,
        following=0,
    )
    hazard = t.lost_customers.sum().over(window).cast("float64") / t.customers_start.sum().over(window).cast(
        "float64"
    ).nullif(0)
    monthly_hazard = 1.0 - (1.0 - hazard) ** WEEKS_PER_MONTH if unit == "week" else hazard
    lifetime = ibis.ifelse(
        monthly_hazard > 1.0 / cfg.clv_max_months, 1.0 / monthly_hazard.nullif(0), cfg.clv_max_months
    )
    lifetime = ibis.ifelse(monthly_hazard.isnull(), ibis.null("float64"), lifetime)
    monthly_value = (
        t._value_start
        if has_value_column
        else t.revenue_start.cast("float64") / t.customers_start.cast("float64").nullif(0)
    )
    answers = _column(t, "nps_answers", "int64")
    complaints = _column(t, "complaints", "int64")
    return t.select(
        *KPI_COLUMNS[: KPI_COLUMNS.index("lost_customers") + 1],  # the counts, as aggregated
        churn_rate_pct=_pct(t.lost_customers, t.customers_start),
        retention_rate_pct=_pct(t.customers_end - t.new_customers, t.customers_start),
        revenue_start=t.revenue_start,
        revenue_lost=ibis.ifelse(
            t.revenue_start.notnull(), t.revenue_lost.fill_null(0.0), ibis.null("float64")
        ),
        revenue_churn_pct=_pct(t.revenue_lost.fill_null(0.0), t.revenue_start),
        first_response_median_minutes=_column(t, "first_response_median_minutes", "float64"),
        first_response_p90_minutes=_column(t, "first_response_p90_minutes", "float64"),
        first_contact_resolution_pct=_column(t, "first_contact_resolution_pct", "float64"),
        complaints=complaints.fill_null(0) if "complaints" in t.columns else complaints,
        complaints_per_100_customers=_pct(complaints.fill_null(0), t.customers_start)
        if "complaints" in t.columns
        else ibis.null("float64"),
        complaint_resolution_median_hours=_column(t, "complaint_resolution_median_hours", "float64"),
        nps=_pct(_column(t, "_promoters", "int64") - _column(t, "_detractors", "int64"), answers),
        nps_answers=answers.fill_null(0) if "nps_answers" in t.columns else answers,
        nps_non_respondent_pct=_pct(t.customers_start - t._respondents_at_start, t.customers_start)
        if "nps_answers" in t.columns
        else ibis.null("float64"),
        monthly_churn_hazard=monthly_hazard,
        expected_lifetime_months=lifetime,
        clv=monthly_value * (cfg.margin_pct / 100.0) * lifetime,
    )
