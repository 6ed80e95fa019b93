"""Complaint features on hand-made tables (as of 2024-06-30, end of day)."""

from __future__ import annotations

import pytest

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.features import complaints
from tests.features.synthetic import AS_OF, frame, rows_by_customer, source

CONTACTS = frame(
    "customer_id ts channel is_complaint resolved_ts",
    [
        (1, "2024-06-29 10:00", "chat", True, "2024-06-30 10:00"),  # resolved by t
        (1, "2024-06-15 10:00", "phone", True, "2024-07-05 10:00"),  # resolved after t: unresolved at t
        (1, "2024-04-10 10:00", "email", True, None),  # never resolved
        (1, "2024-06-30 10:00", "chat", False, None),  # not a complaint
        (1, "2024-07-01 00:00", "chat", True, None),  # after t
        (2, "2024-06-30 11:00", "chat", False, "2024-06-30 12:00"),
    ],
)


@pytest.fixture(scope="module")
def rows() -> dict:
    return rows_by_customer(
        complaints.complaint_features(
            source(support_contacts=CONTACTS).tables.support_contacts, AS_OF, FeatureConfig()
        )
    )


def test_complaints_per_window(rows: dict) -> None:
    assert (rows[1]["complaints_7d"], rows[1]["complaints_30d"], rows[1]["complaints_90d"]) == (1, 2, 3)
    assert (rows[2]["complaints_7d"], rows[2]["complaints_90d"]) == (0, 0)


def test_unresolved_complaints_at_as_of(rows: dict) -> None:
    assert rows[1]["unresolved_complaints"] == 2
    assert rows[2]["unresolved_complaints"] == 0


def test_days_since_last_complaint(rows: dict) -> None:
    assert rows[1]["days_since_last_complaint"] == 1
    assert rows[2]["days_since_last_complaint"] is None


def test_without_resolved_ts_unresolved_complaints_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="features"):
        table = complaints.complaint_features(
            source(support_contacts=CONTACTS.drop(columns="resolved_ts")).tables.support_contacts,
            AS_OF,
            FeatureConfig(),
        )
    assert "unresolved_complaints" not in table.columns
    assert rows_by_customer(table)[1]["complaints_90d"] == 3
    assert "dropping unresolved_complaints" in caplog.text
