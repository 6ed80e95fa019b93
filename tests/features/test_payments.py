"""Payment and price features on hand-made tables (as of 2024-06-30; t-90 = 2024-04-01)."""

from __future__ import annotations

import pytest

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.features import payments
from tests.features.synthetic import AS_OF, frame, rows_by_customer, source

PAYMENTS = frame(
    "customer_id ts amount status",
    [
        (1, "2024-03-01 10:00", 50.0, "paid"),
        (1, "2024-03-31 10:00", 50.0, "paid"),
        (1, "2024-04-01 10:00", 55.0, "paid"),  # on t-90: the 'earlier' amount
        (1, "2024-05-20 10:00", 60.0, "failed"),
        (1, "2024-06-15 10:00", 60.0, "paid"),  # the last paid amount
        (1, "2024-06-28 10:00", 60.0, "failed"),
        (1, "2024-07-01 00:00", 80.0, "paid"),  # after t
        (2, "2024-01-15 10:00", 30.0, "paid"),
        (2, "2024-06-15 10:00", 30.0, "paid"),
        (3, "2024-06-01 10:00", 20.0, "paid"),  # no payment 90 days earlier
    ],
)


@pytest.fixture(scope="module")
def rows() -> dict:
    return rows_by_customer(
        payments.payment_features(source(payments=PAYMENTS).tables.payments, AS_OF, FeatureConfig())
    )


def test_failed_payments_per_window(rows: dict) -> None:
    assert (
        rows[1]["failed_payments_7d"],
        rows[1]["failed_payments_30d"],
        rows[1]["failed_payments_90d"],
    ) == (1, 1, 2)
    assert rows[2]["failed_payments_90d"] == 0


def test_paid_amount_per_window(rows: dict) -> None:
    # the 90-day window starts 04-02, so the 55.0 of 04-01 is outside it
    assert (rows[1]["paid_amount_7d"], rows[1]["paid_amount_30d"], rows[1]["paid_amount_90d"]) == (
        None,
        60.0,
        60.0,
    )
    assert rows[2]["paid_amount_90d"] == 30.0


def test_price_change_against_the_payment_90_days_earlier(rows: dict) -> None:
    assert rows[1]["last_paid_amount"] == 60.0
    assert rows[1]["price_change_pct"] == pytest.approx(100 * (60 - 55) / 55)
    assert rows[1]["price_rise"] == 1
    assert (rows[2]["last_paid_amount"], rows[2]["price_change_pct"], rows[2]["price_rise"]) == (30.0, 0.0, 0)
    assert (rows[3]["last_paid_amount"], rows[3]["price_change_pct"], rows[3]["price_rise"]) == (
        20.0,
        None,
        0,
    )
