"""Purchase frequency and regularity: how often a customer comes back, how regularly, and how overdue they are.

For non-contractual businesses (a purchase log, churn = no event in the next N days) the rhythm of a
customer's own visits says more than any fixed window: a customer who buys every 3 days and has been
silent for 20 is gone, one who buys every 60 days and has been silent for 20 is on schedule.

Point-in-time from every event known at t (`base.known_at`), over the customer's whole history:
- `lifetime_events`: events so far; `visit_days`: distinct calendar days with at least one event;
- `days_since_first_event`: age of the customer's history (0 = first event on the as-of day);
- `events_per_week`: lifetime_events over the weeks from the first event's day to t (inclusive);
  `events_per_active_day`: lifetime_events / visit_days (how intense a visit is);
- `visit_gap_mean_days`, `visit_gap_median_days`, `visit_gap_std_days` (sample), `visit_gap_cv`
  (std / mean): statistics of the gaps in days between consecutive visit days;
- `visit_overdue_ratio`: days since the last event / the customer's own mean gap (1 = a visit is due
  now, 3 = silent for three usual gaps);
- `visit_gap_last_vs_mean`: the last completed gap / the mean gap (> 1 = visits are spreading out).

Gaps are between distinct DAYS, not events: several events on one day are one visit. Counting events would
add a 0-day gap for every extra event of a session, so the median of a customer who logs 5 events per
visit every 10 days would be 0 and the CV would measure session length, not rhythm. It also matches the
BG/NBD convention (`features.btyd`: a repeat transaction = a later day with a purchase).

Nulls, never sentinels: gap statistics need 2 visit days (the std, CV and the gap trend 3); customers with no
events are absent (the feature table gives 0 counts and null rates).

One pass, vectorised: known events -> one row per (customer, day) -> LAG(day) over the customer's days
(a window function both DuckDB and Spark run) -> one group-by per customer. The median is the exact
MEDIAN (DuckDB `percentile_cont(0.5)`, Spark `percentile(x, 0.5)`): exact and deterministic, where an
approximate quantile (t-digest) may differ between runs with the engine's parallel merge order, and the
gaps are few per customer, so exactness is cheap. The mean gap is (last day - first day) / (visit days - 1),
identical to the mean of the gaps without averaging them.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from features.base import days_since, known_at


def visit_days_table(events: ir.Table, as_of: dt.date) -> ir.Table:
    """One row per customer and calendar day with events known at `as_of`: customer_id, day, n (events),
    prev_day (the customer's previous visit day; null on their first)."""
    known = known_at(events, as_of)
    days = known.group_by("customer_id", day=known.ts.date()).aggregate(n=known.count())
    w = ibis.window(group_by="customer_id", order_by="day")
    return days.mutate(prev_day=days.day.lag().over(w))


def frequency_features(events: ir.Table, as_of: dt.date) -> ir.Table:
    """Per customer with events known at `as_of`: the frequency family (see the module docstring)."""
    d = visit_days_table(events, as_of)
    gap = d.day.delta(d.prev_day, unit="day").cast("float64")  # null on the first visit day
    per_customer = d.group_by("customer_id").aggregate(
        lifetime_events=d.n.sum().cast("int64"),
        visit_days=d.count(),
        _first=d.day.min(),
        _last=d.day.max(),
        _prev_of_last=d.prev_day.max(),  # prev_day rises with day, so its max is the day before the last
        visit_gap_median_days=gap.median(),
        visit_gap_std_days=gap.std(how="sample"),
    )
    p = per_customer
    age = days_since(as_of, p._first)
    silent = days_since(as_of, p._last).cast("float64")
    mean_gap = p._last.delta(p._first, unit="day").cast("float64") / (p.visit_days - 1).nullif(0)
    last_gap = p._last.delta(p._prev_of_last, unit="day").cast("float64")
    three_or_more = p.visit_days >= 3
    return p.select(
        "customer_id",
        "lifetime_events",
        "visit_days",
        days_since_first_event=age,
        events_per_week=p.lifetime_events.cast("float64") * 7.0 / (age + 1).cast("float64"),
        events_per_active_day=p.lifetime_events.cast("float64") / p.visit_days.cast("float64"),
        visit_gap_mean_days=mean_gap,
        visit_gap_median_days=p.visit_gap_median_days,
        visit_gap_std_days=p.visit_gap_std_days,
        # mean_gap >= 1 whenever defined (distinct days), so the divisions never hit 0
        visit_gap_cv=p.visit_gap_std_days / mean_gap,
        visit_overdue_ratio=silent / mean_gap,
        visit_gap_last_vs_mean=ibis.ifelse(three_or_more, last_gap / mean_gap, ibis.null("float64")),
    )
