"""The feature catalog: every produced feature has a family and plain words; texts for typical values."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.data.io import source_from_frames
from churn_pipeline.features.build import feature_table
from churn_pipeline.features.catalog import (
    FAMILIES,
    concept,
    default_value,
    describe,
    family,
    family_of_reason,
)
from tests.features.synthetic import random_frames

CFG = FeatureConfig(important_event_types=("login", "feature_use"), event_types=("login", "feature_use"))
ATTRIBUTES = {"plan", "monthly_fee", "loyalty_member"}


@pytest.fixture(scope="module")
def feature_names() -> list[str]:
    table = feature_table(
        source_from_frames(random_frames(seed=1, n_customers=30)).tables, dt.date(2024, 6, 30), CFG
    )
    return [c for c in table.columns if c != "customer_id"]


def test_every_produced_feature_has_a_family(feature_names: list[str]) -> None:
    for name in feature_names:
        fam = family(name)
        assert fam in FAMILIES
        assert (fam == "attributes") == (name in ATTRIBUTES), name
    assert {family(n) for n in feature_names} == set(FAMILIES)


def test_every_produced_feature_describes_values_and_nulls(feature_names: list[str]) -> None:
    # the BG/NBD columns are added after the ibis table executes (churn_pipeline.stages.training_set), so name them here
    for name in [*feature_names, "btyd_p_alive", "btyd_expected_events"]:
        for value in (0, 1, 2.5, None, float("nan")):
            text = describe(name, value)
            assert text and "{" not in text and "}" not in text and "_" not in text.replace(name, ""), (
                name,
                value,
                text,
            )


@pytest.mark.parametrize(
    "name, value, text",
    [
        ("complaints_30d", 3, "3 complaints in the last 30 days"),
        ("complaints_7d", 1, "1 complaint in the last 7 days"),
        ("days_since_last_event", 21, "no activity for 21 days"),
        ("days_since_last_event", None, "no activity recorded"),
        ("days_since_last_login", 5.0, "no login for 5 days"),
        ("days_since_last_feature_use", 1, "no feature use for 1 day"),
        ("failed_payments_30d", 2, "2 failed payments in the last 30 days"),
        ("events_feature_use_7d", 4, "4 feature use events in the last 7 days"),
        ("active_days_30d", 3, "active on 3 of the last 30 days"),
        ("events_trend_30_vs_prev60", 0.4, "activity in the last 30 days down 60% vs the 60 days before"),
        ("events_trend_7_vs_30", 1.25, "activity in the last 7 days up 25% vs the last 30 days"),
        ("events_trend_7_vs_30", 1.0, "activity in the last 7 days unchanged vs the last 30 days"),
        ("price_change_pct", 15.0, "paid amount up 15% vs 90 days earlier"),
        ("price_rise", 1, "price rise (paid amount up vs 90 days earlier)"),
        ("price_rise", 0, "no price rise in the last 90 days"),
        ("paid_amount_90d", 59.97, "paid 59.97 in the last 90 days"),
        ("spend_30d", 1234.5, "spent 1,234.50 in the last 30 days"),
        ("nps_change", -4, "NPS down 4 points since the previous answer"),
        ("nps_change", 1, "NPS up 1 point since the previous answer"),
        ("nps_detractor", 1, "NPS detractor (last answer 0-6)"),
        ("csat_mean_90d", 2.5, "average support satisfaction 2.5 of 5 (last 90 days)"),
        ("response_minutes_max_30d", 312.4, "slowest support response 312 minutes (last 30 days)"),
        ("contacts_phone_7d", 2, "2 phone contacts in the last 7 days"),
        ("unresolved_complaints", 2, "2 unresolved complaints"),
        ("visit_gap_mean_days", 12.3, "visits every 12 days on average"),
        ("visit_gap_mean_days", None, "fewer than two active days so far"),
        ("visit_overdue_ratio", 40 / 12, "no visit for 3.33x their average gap between visits"),
        ("visit_gap_last_vs_mean", 2.0, "last gap between visits up 100% vs their average gap"),
        ("lifetime_events", 1, "1 event in total"),
        ("btyd_p_alive", 0.2149, "likely no longer active (P(alive) 0.21)"),
        ("btyd_p_alive", 0.93, "likely still active (P(alive) 0.93)"),
        ("btyd_p_alive", None, "no activity recorded"),
        ("btyd_expected_events", 1.234, "1.23 active days expected in the label horizon"),
        ("plan", "basic", "plan: basic"),
        ("monthly_fee", 49.99, "monthly fee: 49.99"),
        ("loyalty_member", None, "loyalty member: unknown"),
    ],
)
def test_describe_texts(name: str, value: object, text: str) -> None:
    assert describe(name, value) == text


def test_families_of_lookalike_names() -> None:
    assert family("days_since_last_payment") == "payments"
    assert family("days_since_last_complaint") == "complaints"
    assert family("days_since_last_purchase") == "recency"
    assert family("events_purchase_30d") == "activity"
    assert family("contacts_chat_90d") == "support"
    assert family("price_change_pct") == "price"
    assert family("btyd_p_alive") == family("visit_gap_cv") == family("events_per_week") == "frequency"
    assert family("events_per_week") != family("events_30d")


def test_default_values() -> None:
    assert (
        default_value("events_30d") == 0
        and default_value("open_contacts") == 0
        and default_value("price_rise") == 0
    )
    assert default_value("paid_amount_7d") == 0.0
    assert default_value("days_since_last_event") is None and default_value("plan") is None
    assert not math.isnan(default_value("spend_90d"))


@pytest.mark.parametrize(
    "names, same",
    [
        (("failed_payments_30d", "failed_payments_90d"), True),
        (("complaints_7d", "complaints_90d"), True),
        (("events_login_7d", "events_login_90d"), True),
        (("events_trend_30_vs_prev60", "events_trend_7_vs_30"), True),
        (("response_minutes_mean_7d", "response_minutes_mean_30d"), True),
        (("events_login_30d", "events_error_30d"), False),
        (("contacts_chat_30d", "contacts_30d"), False),
        (("response_minutes_mean_30d", "response_minutes_max_30d"), False),
        (("days_since_last_event", "days_since_last_login"), False),
        (("plan", "monthly_fee"), False),
    ],
)
def test_concept_groups_window_variants_of_one_fact(names: tuple[str, str], same: bool) -> None:
    assert (concept(names[0]) == concept(names[1])) is same


def test_concept_of_every_produced_feature(feature_names: list[str]) -> None:
    concepts = {concept(n) for n in feature_names}
    assert "complaints" in concepts and "events_login" in concepts and "plan" in concepts
    assert not any(c.endswith(("_7d", "_30d", "_90d")) for c in concepts)


def test_a_reason_is_read_back_to_the_family_of_the_feature_that_wrote_it(feature_names: list[str]) -> None:
    """The report groups the at-risk list's reasons (words only) by family: every text a produced feature writes
    reads back to its family; words several families write alike ("no activity recorded") to one of them."""
    writers: dict[str, set[str]] = {}
    for name in [*feature_names, "btyd_p_alive", "btyd_expected_events", "price_change_pct"]:
        for value in (0, 1, 2.5, 37, -12.0, 1234.5, 0.3, 0.7, None, "basic"):
            if isinstance(value, str) and family(name) != "attributes":
                continue
            writers.setdefault(describe(name, value), set()).add(family(name))
    shared = {text for text, families in writers.items() if len(families) > 1}
    assert shared == {"no activity recorded", "no successful payment recorded"}
    for text, families in writers.items():
        assert family_of_reason(text) in families, text
    assert family_of_reason("plan: basic") == "attributes"
    assert family_of_reason("3 complaints in the last 30 days") == "complaints"
    assert family_of_reason("paid amount up 15% vs 90 days earlier") == "price"
