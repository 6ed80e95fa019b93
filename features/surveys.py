"""Surveys: the customer's latest NPS answer known at t, whether it makes them a detractor, and its change.

NPS detractors answer 0-6 (passives 7-8, promoters 9-10). `nps_detractor` is 1 only when the last known
answer is 0-6; it is 0 otherwise, including when the customer never answered (then `nps_last` is null, so
the model can still tell "no answer" apart). Two answers at the same instant are ordered by score,
highest first, so the result never depends on row order.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from churn_pipeline.features.base import aggregate, days_since, known_at

DETRACTOR_MAX_NPS = 6


def nps_answers(surveys: ir.Table, as_of: dt.date) -> ir.Table:
    """Per customer with an answer by `as_of`: nps_last, nps_detractor, nps_change (vs the previous
    answer; null with a single answer) and days_since_last_survey."""
    known = known_at(surveys, as_of)
    order = ibis.row_number().over(group_by=known.customer_id, order_by=[known.ts.desc(), known.nps.desc()])
    ranked = known.mutate(_answer_rank=order)
    latest_two = ranked.filter(ranked._answer_rank < 2)
    last = latest_two.nps.max(where=latest_two._answer_rank == 0)
    previous = latest_two.nps.max(where=latest_two._answer_rank == 1)
    return aggregate(
        latest_two,
        {
            "nps_last": last,
            "nps_detractor": ibis.ifelse(last <= DETRACTOR_MAX_NPS, 1, 0),
            "nps_change": last - previous,
            "days_since_last_survey": days_since(as_of, latest_two.ts.max()),
        },
    )
