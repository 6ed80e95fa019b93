"""NPS features on hand-made tables (as of 2024-06-30, end of day)."""

from __future__ import annotations

from churn_pipeline.features import surveys
from tests.features.synthetic import AS_OF, customers, frame, rows_by_customer, source

SURVEYS = frame(
    "customer_id ts nps",
    [
        (1, "2024-06-01 10:00", 9),
        (1, "2024-06-20 10:00", 4),
        (1, "2024-07-01 00:00", 10),  # after t
        (2, "2024-05-01 10:00", 8),
        (4, "2024-06-10 10:00", 3),  # two answers at the same instant: ordered by score, highest first
        (4, "2024-06-10 10:00", 7),
        (5, "2024-06-29 10:00", 6),  # the detractor boundary
        (5, "2024-03-01 10:00", 10),
    ],
)


def _rows() -> dict:
    cust = customers(*[(i, "2024-01-01", None) for i in (1, 2, 3, 4, 5)])
    return rows_by_customer(
        surveys.nps_answers(source(customers=cust, surveys=SURVEYS).tables.surveys, AS_OF)
    )


def test_last_answer_detractor_and_change() -> None:
    rows = _rows()
    assert (rows[1]["nps_last"], rows[1]["nps_detractor"], rows[1]["nps_change"]) == (4, 1, 4 - 9)
    assert rows[1]["days_since_last_survey"] == 10
    assert (rows[2]["nps_last"], rows[2]["nps_detractor"], rows[2]["nps_change"]) == (8, 0, None)
    assert (rows[4]["nps_last"], rows[4]["nps_change"]) == (7, 7 - 3)
    assert (rows[5]["nps_last"], rows[5]["nps_detractor"], rows[5]["nps_change"]) == (6, 1, 6 - 10)
    assert 3 not in rows  # never answered (build.py: nps_last null, detractor 0)
