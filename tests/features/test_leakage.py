"""Point-in-time correctness: every family gives the same features at t with or without the data after t.

'Without' = rows with ts after the end of t deleted, resolutions/CSAT/response times that happened after t
unknown, churn dates after t unknown (`synthetic.as_known_at`). The full data also holds rows at the exact
first instant after t, so an inclusive cutoff would show up as a difference.
"""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.core.tables import SourceTables
from churn_pipeline.data.io import source_from_frames
from churn_pipeline.features import (
    activity,
    attributes,
    build,
    complaints,
    frequency,
    payments,
    recency,
    support,
    surveys,
)
from churn_pipeline.features.base import left_join_features
from tests.features.synthetic import as_known_at, random_frames, with_boundary_rows

CFG = FeatureConfig(important_event_types=("login", "purchase"), event_types=("login", "purchase", "error"))


def _recency(t: SourceTables, as_of: dt.date, cfg: FeatureConfig) -> ibis.Table:
    return left_join_features(
        recency.tenure_days(t.customers, as_of),
        [
            recency.days_since_last_event(t.events, as_of, cfg.important_event_types),
            recency.days_since_last_payment(t.payments, as_of),
        ],
    )


FAMILIES = {
    "recency": _recency,
    "activity": lambda t, as_of, cfg: activity.activity_features(t.events, as_of, cfg),
    "frequency": lambda t, as_of, cfg: frequency.frequency_features(t.events, as_of),
    "support": lambda t, as_of, cfg: support.support_features(t.support_contacts, as_of, cfg),
    "complaints": lambda t, as_of, cfg: complaints.complaint_features(t.support_contacts, as_of, cfg),
    "surveys": lambda t, as_of, cfg: surveys.nps_answers(t.surveys, as_of),
    "payments": lambda t, as_of, cfg: payments.payment_features(t.payments, as_of, cfg),
    "attributes": lambda t, as_of, cfg: attributes.customer_attributes(t.customers, as_of, cfg),
    "feature_table": build.feature_table,
}

AS_OFS = [dt.date(2024, 4, 15), dt.date(2024, 6, 30)]


@pytest.fixture(scope="module", params=AS_OFS, ids=str)
def full_and_known(request: pytest.FixtureRequest):
    as_of = request.param
    frames = with_boundary_rows(random_frames(seed=5, n_customers=80), as_of)
    return as_of, source_from_frames(frames).tables, source_from_frames(as_known_at(frames, as_of)).tables


def _frame(table: ibis.Table) -> pd.DataFrame:
    return table.execute().sort_values("customer_id").reset_index(drop=True)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_features_ignore_everything_after_as_of(full_and_known, family: str) -> None:
    as_of, full, known = full_and_known
    build_family = FAMILIES[family]
    with_future = _frame(build_family(full, as_of, CFG))
    without_future = _frame(build_family(known, as_of, CFG))
    assert len(with_future) > 10, "the test data must give this family something to compute"
    assert with_future.drop(columns="customer_id").notna().any().all() or family == "feature_table"
    pd.testing.assert_frame_equal(with_future, without_future)


def test_the_future_data_really_differs(full_and_known) -> None:
    """Guards the leakage test itself: the 'full' source must hold information the 'known' one lacks."""
    as_of, full, known = full_and_known
    cut = ibis.timestamp(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()))
    assert full.events.filter(full.events.ts >= cut).count().execute() > 0
    assert known.events.filter(known.events.ts >= cut).count().execute() == 0
    c_full, c_known = full.support_contacts, known.support_contacts
    assert (
        c_full.filter(c_full.resolved_ts >= cut).count().execute()
        > c_known.filter(c_known.resolved_ts >= cut).count().execute()
    )
    assert c_full.csat.notnull().sum().execute() > c_known.csat.notnull().sum().execute()
    assert (
        full.customers.churn_date.notnull().sum().execute()
        > known.customers.churn_date.notnull().sum().execute()
    )
