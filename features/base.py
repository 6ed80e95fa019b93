"""Shared point-in-time building blocks: the as-of cutoff, window bounds, active customers, fused aggregation.

Conventions (every family relies on them; README "Point-in-time rules" states them for users):
- "as of t" means the END of day t: a row is known at t iff `ts < t + 1 day` (i.e. `date(ts) <= t`).
- A window of w days ending at t covers `ts` in `[t + 1 day - w days, t + 1 day)`: the w calendar days
  t-w+1 .. t, so `events_7d` at t counts the 7 days ending with t itself.
- A customer is ACTIVE at t iff `signup_date <= t` and (`churn_date` is null or `churn_date > t`).
- Day counts ("days since ...") are calendar days between `date(ts)` and t: 0 = happened on day t.

Every builder works on ibis expressions only (no backend-specific SQL; the two builtin functions used,
BIT_COUNT and MAX_BY, exist in DuckDB and Spark), so the same definitions run on DuckDB (default) or an
ibis Spark backend. Builders that read the same table return their reductions as `Metrics` (feature name
-> per-customer reduction expression) so `aggregate` can compute every family over that table in ONE
group-by pass instead of one scan per family.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

import ibis
import ibis.expr.datatypes as dt_
import ibis.expr.types as ir

log = logging.getLogger("features")

Metrics = Mapping[str, ir.Value]
"""Feature name -> scalar reduction over a table (a reduction, or a scalar expression of reductions)."""


def cutoff(as_of: dt.date) -> dt.datetime:
    """The first instant NOT known at `as_of` (midnight starting the next day)."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def window_start(as_of: dt.date, days: int) -> dt.datetime:
    """The first instant inside the `days`-day window ending at the end of `as_of`."""
    return cutoff(as_of) - dt.timedelta(days=days)


def ts_literal(value: dt.datetime) -> ir.TimestampScalar:
    return ibis.timestamp(value)


def in_window(ts: ir.TimestampValue, as_of: dt.date, days: int) -> ir.BooleanValue:
    """`ts` falls in the `days`-day window ending at `as_of` (assumes the rows are already known at as_of)."""
    return ts >= ts_literal(window_start(as_of, days))


def known_at(table: ir.Table, as_of: dt.date, ts_column: str = "ts") -> ir.Table:
    """Rows that existed at the end of `as_of`."""
    return table.filter(table[ts_column] < ts_literal(cutoff(as_of)))


def within_window(known: ir.Table, as_of: dt.date, days: int, ts_column: str = "ts") -> ir.Table:
    """Rows of `known` (already known at `as_of`) inside the `days`-day window ending at `as_of`."""
    return known.filter(in_window(known[ts_column], as_of, days))


def known_by(ts: ir.TimestampValue, as_of: dt.date) -> ir.BooleanValue:
    """A (possibly null) timestamp that had happened by the end of `as_of`; null is never known."""
    return ts.notnull() & (ts < ts_literal(cutoff(as_of)))


def days_since(as_of: dt.date, moment: ir.Value) -> ir.IntegerValue:
    """Whole calendar days from the date of `moment` (date or timestamp) to `as_of`; null stays null."""
    day = moment.date() if isinstance(moment, ir.TimestampValue) else moment
    return ibis.date(as_of).delta(day, unit="day")


def rate_ratio(
    recent: ir.NumericValue, recent_days: int, before: ir.NumericValue, before_days: int
) -> ir.FloatingValue:
    """Per-day rate of `recent` over the per-day rate of `before`; null (not inf) when `before` is zero."""
    return (recent.cast("float64") / recent_days) / (before.cast("float64") / before_days).nullif(0)


def active_customers(customers: ir.Table, as_of: dt.date) -> ir.Table:
    """Customers active at the end of `as_of`: signed up on or before it and not churned by it."""
    t = ibis.date(as_of)
    return customers.filter(
        (customers.signup_date <= t) & (customers.churn_date.isnull() | (customers.churn_date > t))
    )


def aggregate(known: ir.Table, *metrics: Metrics) -> ir.Table:
    """One group-by pass over `known` computing every given metric per customer_id."""
    merged: dict[str, ir.Value] = {}
    for m in metrics:
        clash = merged.keys() & m.keys()
        if clash:
            raise ValueError(f"feature names computed twice: {sorted(clash)}")
        merged.update(m)
    return known.group_by("customer_id").aggregate(**merged)


# Conditional aggregates are written as COUNT_IF or aggregates over CASE expressions (`count_where`,
# `sum_where`, ...) rather than with ibis' `where=` (SQL `FILTER (WHERE ...)`). Both mean the same on
# every backend, but on DuckDB a FILTER clause costs a pass per aggregate over each batch, which made the
# 1M-customer build about twice as slow when dozens of windowed aggregates read the same rows.


def when(cond: ir.BooleanValue, value: ir.Value) -> ir.Value:
    """`value` where `cond` holds, else null (null conditions count as false)."""
    return ibis.ifelse(cond, value, ibis.null(value.type()))


@ibis.udf.agg.builtin(name="count_if")
def _count_if(cond: dt_.boolean) -> dt_.Decimal(38, 0):  # DuckDB (HUGEINT) and Spark 3.0+ (BIGINT) have it
    """Number of rows where `cond` is true."""


def count_where(cond: ir.BooleanValue) -> ir.IntegerValue:
    """Number of rows where `cond` holds (0 when none; null conditions count as false).

    COUNT_IF rather than COUNT(CASE ...): DuckDB evaluates it without materialising a CASE column per
    aggregate, which made the 1M-customer activity pass ~15% faster (1.52 s -> 1.27 s).
    """
    return _count_if(cond).cast("int64")  # DuckDB's HUGEINT would reach Arrow as decimal128


def sum_where(value: ir.NumericValue, cond: ir.BooleanValue) -> ir.NumericValue:
    """Sum of `value` over rows where `cond` holds (null when none)."""
    return when(cond, value).sum()


@ibis.udf.agg.builtin(name="max_by")
def _max_by(value: dt_.float64, key: dt_.timestamp) -> dt_.float64:  # DuckDB ARG_MAX, Spark MAX_BY
    """`value` of the row with the greatest non-null `key`."""


def latest_where(value: ir.FloatingValue, ts: ir.TimestampValue, cond: ir.BooleanValue) -> ir.FloatingValue:
    """`value` of the latest row (by `ts`) where `cond` holds; null when none. Rows sharing the latest
    instant are a tie the backend breaks (ibis' own argmax is an ordered FIRST(), measured 1.6x slower)."""
    return _max_by(value, when(cond, ts))


def has_columns(table: ir.Table | None, *columns: str) -> bool:
    return table is not None and all(c in table.columns for c in columns)


def note_missing(what: str, dropped: str) -> None:
    """Log that optional input is absent and which features are left out because of it."""
    log.info("%s not in the data source: dropping %s", what, dropped)


def slug(value: str) -> str:
    """A configured value (event type, channel) as it appears inside a feature name: lower_snake_case."""
    out = "".join(ch if ch.isalnum() else "_" for ch in value.strip().lower())
    return "_".join(part for part in out.split("_") if part) or "blank"


def history_and_window(
    known: ir.Table, recent: ir.Table, history: Sequence[Metrics], window: Sequence[Metrics]
) -> list[ir.Table]:
    """Two passes over one source table, each keyed by customer_id: the `history` metrics over every known
    row, the `window` metrics over the rows of the longest window only (`within_window`).

    Splitting pays because a group-by costs per group and aggregate: the windowed aggregates (most of
    a family) then keep state only for the customers active in the window (a quarter of those with
    support contacts at 1M customers: support + complaints went from 0.8 s to 0.4 s). Left-joined, a
    customer with known rows but none in the window gets null window columns; the feature table fills
    the catalog's default (0 for counts).
    """
    return [aggregate(known, *history), aggregate(recent, *window)]


def left_join_features(base: ir.Table, parts: list[ir.Table]) -> ir.Table:
    """`base` (keyed by customer_id) with every part's feature columns left-joined on customer_id."""
    out = base
    for part in parts:
        joined = out.left_join(part, out.customer_id == part.customer_id)
        out = joined.select(
            *[out[c] for c in out.columns], *[part[c] for c in part.columns if c != "customer_id"]
        )
    return out


@ibis.udf.scalar.builtin(name="bit_count")
def _bit_count(x: dt_.int64) -> dt_.int8:  # DuckDB and Spark both have BIT_COUNT(bigint); DuckDB's is TINYINT
    """Number of set bits."""


@ibis.udf.agg.builtin(name="bit_or")
def bit_or(
    x: dt_.int64,
) -> dt_.int64:  # ibis 12's Spark compiler has no rule for `.bit_or()`; the function exists in both
    """Bitwise OR of a column's values (per group)."""


# Active days without COUNT(DISTINCT day): COUNT(DISTINCT) per window is the slowest aggregate there is (a
# hash set per group and window). Instead each row sets bit `age` (days before the as-of date, 0 = the as-of
# day) of a per-customer bit mask, kept as 62-day int64 words; BIT_OR over a customer's rows gives the days
# they were active, and a window's active days are the set bits among its first w. One pass, any number of
# windows, and shift, BIT_OR and BIT_COUNT exist in DuckDB and Spark alike.
BITS_PER_WORD = 62  # the sign bit and one spare stay clear


def day_bit_words(age: ir.IntegerValue, span_days: int) -> list[ir.IntegerValue]:
    """Per row: the words of a bit mask with bit `age` set (all zero when age is outside [0, span_days)).

    Aggregate each word with `bit_or` per customer, then count a window's days with `days_set`.
    """
    one = ibis.literal(1).cast("int64")
    words = []
    for i in range(-(-span_days // BITS_PER_WORD)):
        lo = i * BITS_PER_WORD
        inside = (age >= lo) & (age < min(lo + BITS_PER_WORD, span_days))
        # the clip keeps the shift in range on rows the CASE discards, whatever order a backend evaluates in
        shift = ibis.greatest(ibis.least(age - lo, BITS_PER_WORD - 1), 0)
        words.append(ibis.ifelse(inside, one << shift, 0))
    return words


def days_set(words: Sequence[ir.IntegerValue], days: int) -> ir.IntegerValue:
    """How many of the first `days` bits of a day bit mask (as OR-ed words) are set."""
    total: ir.IntegerValue | None = None
    for i, word in enumerate(words):
        bits = min(days - i * BITS_PER_WORD, BITS_PER_WORD)
        if bits <= 0:
            break
        # widened before summing: two full words already overflow DuckDB's TINYINT (62 + 62 + 62 > 127)
        term = _bit_count(word & ibis.literal((1 << bits) - 1, type="int64")).cast("int64")
        total = term if total is None else total + term
    assert total is not None, "days must be positive"
    return total
