"""Support-contact features on hand-made tables (as of 2024-06-30, end of day = 2024-07-01 00:00)."""

from __future__ import annotations

import pytest

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.features import build, support
from tests.features.synthetic import AS_OF, frame, rows_by_customer, source

CFG = FeatureConfig()  # windows 7/30/90, channels chat/email/phone

COLUMNS = "customer_id ts channel is_complaint response_minutes resolved_ts csat"
CONTACTS = frame(
    COLUMNS,
    [
        # A: answered after 30 min, resolved on 06-29, scored 2
        (1, "2024-06-29 10:00", "chat", False, 30.0, "2024-06-29 12:00", 2),
        # B: opened at 23:00 on t, answered 2 h later (after t): response unknown; still open
        (1, "2024-06-30 23:00", "email", False, 120.0, None, None),
        # C: answered within the hour, resolved only after t: open at t, its score 5 unknown at t
        (1, "2024-06-20 09:00", "phone", True, 60.0, "2024-07-02 10:00", 5),
        # D: in the 90-day window only
        (1, "2024-05-01 09:00", "chat", False, 10.0, "2024-05-01 10:00", 4),
        # E: after t
        (1, "2024-07-01 08:00", "chat", True, 1.0, "2024-07-01 09:00", 1),
        # customer 2: one old resolved contact without a score
        (2, "2024-02-01 09:00", "email", False, 15.0, "2024-02-01 09:30", None),
    ],
)


@pytest.fixture(scope="module")
def rows() -> dict:
    return rows_by_customer(
        support.support_features(source(support_contacts=CONTACTS).tables.support_contacts, AS_OF, CFG)
    )


def test_contacts_per_window_and_channel(rows: dict) -> None:
    r = rows[1]
    assert (r["contacts_7d"], r["contacts_30d"], r["contacts_90d"]) == (2, 3, 4)
    assert (r["contacts_chat_7d"], r["contacts_chat_30d"], r["contacts_chat_90d"]) == (1, 1, 2)
    assert (r["contacts_email_7d"], r["contacts_email_30d"], r["contacts_email_90d"]) == (1, 1, 1)
    assert (r["contacts_phone_7d"], r["contacts_phone_30d"], r["contacts_phone_90d"]) == (0, 1, 1)
    # customer 2's only contact is older than every window: no window row here, 0 in the feature table
    assert (rows[2]["contacts_90d"], rows[2]["contacts_email_90d"]) == (None, None)
    table = rows_by_customer(build.feature_table(source(support_contacts=CONTACTS).tables, AS_OF, CFG))
    assert (table[2]["contacts_90d"], table[2]["contacts_email_90d"], table[2]["open_contacts"]) == (0, 0, 0)
    assert table[2]["days_since_last_contact"] == 150 and table[3]["days_since_last_contact"] is None


def test_days_since_last_contact(rows: dict) -> None:
    assert rows[1]["days_since_last_contact"] == 0
    assert rows[2]["days_since_last_contact"] == 150  # 2024-02-01 -> 2024-06-30: 28 + 31 + 30 + 31 + 30


def test_response_minutes_only_once_the_response_happened(rows: dict) -> None:
    r = rows[1]
    assert (r["response_minutes_mean_7d"], r["response_minutes_max_7d"]) == (30.0, 30.0)  # B not answered yet
    assert (r["response_minutes_mean_30d"], r["response_minutes_max_30d"]) == (45.0, 60.0)  # A, C
    assert r["response_minutes_mean_90d"] == pytest.approx((30 + 60 + 10) / 3)
    assert r["response_minutes_max_90d"] == 60.0
    assert rows[2]["response_minutes_mean_90d"] is None


def test_open_contacts_include_those_resolved_after_as_of(rows: dict) -> None:
    assert rows[1]["open_contacts"] == 2  # B (never resolved) and C (resolved 07-02)
    assert rows[2]["open_contacts"] == 0


def test_csat_only_from_contacts_resolved_by_as_of(rows: dict) -> None:
    r = rows[1]
    assert (r["csat_mean_7d"], r["csat_min_7d"]) == (2.0, 2)
    assert (r["csat_mean_30d"], r["csat_min_30d"]) == (2.0, 2)  # C's 5 is not known yet
    assert (r["csat_mean_90d"], r["csat_min_90d"]) == (3.0, 2)  # A's 2 and D's 4
    assert rows[2]["csat_mean_90d"] is None


def test_response_known_at_the_exact_end_of_day() -> None:
    contacts = frame(
        COLUMNS,
        [
            (1, "2024-06-30 23:00", "chat", False, 59.0, None, None),  # answered 23:59: known
            (2, "2024-06-30 23:00", "chat", False, 60.0, None, None),  # answered 00:00 next day: unknown
        ],
    )
    rows = rows_by_customer(
        support.support_features(source(support_contacts=contacts).tables.support_contacts, AS_OF, CFG)
    )
    assert rows[1]["response_minutes_max_7d"] == 59.0
    assert rows[2]["response_minutes_max_7d"] is None


def test_missing_optional_columns_drop_their_features(caplog: pytest.LogCaptureFixture) -> None:
    bare = CONTACTS.drop(columns=["response_minutes", "resolved_ts", "csat"])
    with caplog.at_level("INFO", logger="features"):
        table = support.support_features(source(support_contacts=bare).tables.support_contacts, AS_OF, CFG)
    assert "contacts_30d" in table.columns and "days_since_last_contact" in table.columns
    assert not any(c.startswith(("response_minutes", "csat", "open_")) for c in table.columns)
    assert "support_contacts.response_minutes not in the data source" in caplog.text
    assert "support_contacts.resolved_ts not in the data source" in caplog.text
    assert rows_by_customer(table)[1]["contacts_90d"] == 4


def test_csat_without_resolved_ts_is_dropped() -> None:
    table = support.support_features(
        source(support_contacts=CONTACTS.drop(columns=["resolved_ts"])).tables.support_contacts, AS_OF, CFG
    )
    assert not any(c.startswith("csat") for c in table.columns)
    assert "response_minutes_mean_30d" in table.columns


def test_channels_follow_the_config() -> None:
    cfg = FeatureConfig(support_channels=("phone",), windows=(30,))
    table = support.support_features(source(support_contacts=CONTACTS).tables.support_contacts, AS_OF, cfg)
    assert [c for c in table.columns if c.startswith("contacts_")] == ["contacts_30d", "contacts_phone_30d"]
    assert rows_by_customer(table)[1]["contacts_phone_30d"] == 1
