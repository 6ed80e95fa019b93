"""One bad-input test per data-contract rule: each asserts the message names table, column and rule."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.data.contract import DISTINCT_FIRST_ROWS_PER_CUSTOMER
from churn_pipeline.data.io import source_from_frames


def customers(**overrides: list) -> pd.DataFrame:
    base = {
        "customer_id": [1, 2, 3],
        "signup_date": [dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)],
        "churn_date": [None, dt.date(2024, 5, 1), None],
        "plan": ["basic", "premium", "basic"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def events(**overrides: list) -> pd.DataFrame:
    base = {
        "customer_id": [1, 1, 2],
        "ts": pd.to_datetime(["2024-04-01 10:00", "2024-04-02 09:00", "2024-04-03 08:00"]),
        "event_type": ["login", "purchase", "login"],
        "amount": [None, 12.5, None],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def contacts(**overrides: list) -> pd.DataFrame:
    base = {
        "customer_id": [1, 2],
        "ts": pd.to_datetime(["2024-04-01 10:00", "2024-04-02 09:00"]),
        "channel": ["chat", "phone"],
        "is_complaint": [True, False],
        "response_minutes": [12.0, 30.0],
        "resolved_ts": pd.to_datetime(["2024-04-01 12:00", None]),
        "csat": [4, None],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def surveys(**overrides: list) -> pd.DataFrame:
    base = {"customer_id": [1, 3], "ts": pd.to_datetime(["2024-04-01", "2024-04-05"]), "nps": [9, 3]}
    base.update(overrides)
    return pd.DataFrame(base)


def payments(**overrides: list) -> pd.DataFrame:
    base = {
        "customer_id": [1, 2],
        "ts": pd.to_datetime(["2024-04-01", "2024-04-01"]),
        "amount": [20.0, 35.0],
        "status": ["paid", "failed"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def problems_of(**frames: pd.DataFrame) -> list[str]:
    frames.setdefault("customers", customers())
    with pytest.raises(DataValidationError) as info:
        source_from_frames(frames)
    return info.value.problems


def only_problem(**frames: pd.DataFrame) -> str:
    problems = problems_of(**frames)
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_source_passes_and_reports_tables():
    source = source_from_frames(
        {
            "customers": customers(),
            "events": events(),
            "support_contacts": contacts(),
            "surveys": surveys(),
            "payments": payments(),
        }
    )
    assert source.report.problems == []
    assert source.report.tables["events"].rows == 3
    assert source.report.tables["customers"].first == "2024-01-01"
    assert source.data_end_date == dt.date(2024, 5, 1)  # the churn date is the latest date present


def test_missing_required_column():
    msg = only_problem(customers=customers().drop(columns="signup_date"))
    assert msg.startswith("customers.signup_date: required column is missing")
    assert "customer_id" in msg  # lists what is there


def test_missing_optional_column_is_fine():
    source = source_from_frames({"customers": customers(), "events": events().drop(columns="amount")})
    assert "amount" not in source.tables.events.columns


def test_wrong_type():
    msg = only_problem(events=events(event_type=[1, 2, 3]))
    assert "events.event_type: wrong type" in msg and "expected a string" in msg


def test_float_ids_are_a_wrong_type():
    msg = only_problem(customers=customers(customer_id=[1.5, 2.0, 3.0]))
    assert "customers.customer_id: wrong type DOUBLE" in msg


def test_duplicate_customer_id():
    msg = only_problem(customers=customers(customer_id=[1, 2, 2]))
    assert "customers.customer_id: 1 ids appear more than once (2 rows, e.g. 2)" in msg


def test_unparseable_date():
    msg = only_problem(customers=customers(signup_date=["2024-01-01", "31/02/2024", "2024-03-01"]))
    assert "customers.signup_date: 1 of 3 rows is not a parseable date (e.g. '31/02/2024')" in msg


def test_unparseable_timestamp():
    msg = only_problem(
        customers=customers(), events=events(ts=["2024-04-01 10:00:00", "yesterday", "2024-04-03"])
    )
    assert "events.ts: 1 of 3 rows is not a parseable timestamp (e.g. 'yesterday')" in msg


def test_null_in_required_column():
    msg = only_problem(events=events(event_type=["login", None, "login"]))
    assert "events.event_type: 1 of 3 rows is null" in msg


def test_churn_before_signup():
    msg = only_problem(customers=customers(churn_date=[dt.date(2023, 12, 1), None, None]))
    assert "customers.churn_date: 1 of 3 rows is before signup_date" in msg


def test_resolved_before_opened():
    bad = contacts(resolved_ts=pd.to_datetime(["2024-03-01", None]))
    msg = only_problem(support_contacts=bad)
    assert "support_contacts.resolved_ts: 1 of 2 rows is before ts" in msg


def test_nps_out_of_range():
    msg = only_problem(surveys=surveys(nps=[11, 3]))
    assert "surveys.nps: 1 of 2 rows is outside [0, 10]" in msg


def test_csat_out_of_range_and_not_whole():
    problems = problems_of(support_contacts=contacts(csat=[0, 3.5]))
    assert any("support_contacts.csat: 1 of 2 rows is outside [1, 5]" in p for p in problems)
    assert any("support_contacts.csat: 1 of 2 rows is not a whole number (e.g. 3.5)" in p for p in problems)


def test_negative_response_minutes():
    msg = only_problem(support_contacts=contacts(response_minutes=[-5.0, 3.0]))
    assert "support_contacts.response_minutes: 1 of 2 rows is outside [0, infinity]" in msg


def test_payment_status_not_allowed():
    msg = only_problem(payments=payments(status=["paid", "refunded"]))
    assert "payments.status: 1 of 2 rows is not one of 'paid', 'failed' (e.g. 'refunded')" in msg


def test_non_numeric_amount():
    msg = only_problem(payments=payments(amount=["20.0", "twenty"]))
    assert "payments.amount: 1 of 2 rows is not a number (e.g. 'twenty')" in msg


def test_boolean_is_complaint():
    msg = only_problem(support_contacts=contacts(is_complaint=["yes", "sometimes"]))
    assert "support_contacts.is_complaint: 1 of 2 rows is not a boolean (e.g. 'sometimes')" in msg


def test_orphan_customer_ids():
    msg = only_problem(events=events(customer_id=[1, 99, 98]))
    assert "events.customer_id: 2 rows refer to customers not in customers" in msg


def test_orphan_customer_ids_of_a_table_with_many_rows_per_customer():
    # Enough rows per customer for the distinct-ids pre-check: same verdict, same message.
    def busy(ids: list) -> pd.DataFrame:
        n = len(ids)
        return events(
            customer_id=ids,
            ts=pd.Timestamp("2024-04-01") + pd.to_timedelta(range(n), unit="min"),  # no exact duplicates
            event_type=["login"] * n,
            amount=[None] * n,
        )

    known = [1, 2, 3] * DISTINCT_FIRST_ROWS_PER_CUSTOMER
    msg = only_problem(events=busy(known + [99, 99, 98]))
    assert "events.customer_id: 3 rows refer to customers not in customers (e.g. " in msg
    assert "99" in msg and "98" in msg
    assert source_from_frames({"customers": customers(), "events": busy(known)}).report.problems == []


def test_empty_table():
    msg = only_problem(events=events().iloc[:0])
    assert msg.startswith("events: table is empty")


def test_empty_customers():
    msg = only_problem(customers=customers().iloc[:0])
    assert msg.startswith("customers: table is empty; provide rows")


def test_string_ids_are_kept_as_strings_across_tables():
    source = source_from_frames(
        {
            "customers": customers(customer_id=["A1", "B2", "C3"]),
            "events": events(customer_id=["A1", "A1", "B2"]),
        }
    )
    assert source.tables.customers.customer_id.type().is_string()
    assert source.tables.events.count().execute() == 3


def test_integer_text_ids_match_integer_ids():
    # A CSV extract gives "1", a Parquet one gives 1: they are the same customer.
    source = source_from_frames({"customers": customers(), "events": events(customer_id=["1", "1", "2"])})
    assert source.tables.events.customer_id.type().is_integer()


def test_ids_with_leading_zeros_stay_strings():
    source = source_from_frames(
        {
            "customers": customers(customer_id=["001", "002", "003"]),
            "events": events(customer_id=["001", "001", "002"]),
        }
    )
    assert source.tables.customers.customer_id.type().is_string()
    assert source.tables.customers.customer_id.execute().tolist() == ["001", "002", "003"]


def test_all_problems_are_reported_at_once():
    problems = problems_of(
        customers=customers(customer_id=[1, 2, 2]),
        surveys=surveys(customer_id=[1, 2], nps=[11, 3]),
        payments=payments(status=["paid", "x"]),
    )
    assert len(problems) == 3, problems


def test_a_column_with_no_value_at_all_takes_the_contract_type():
    # A young company with no churned customer yet: pandas gives the all-None column no real type.
    source = source_from_frames(
        {
            "customers": customers(churn_date=[None, None, None]),
            "support_contacts": contacts(csat=[None, None]),
        }
    )
    assert source.tables.customers.churn_date.type().is_date()
    assert source.tables.support_contacts.csat.type().is_integer()
    assert source.tables.customers.churn_date.isnull().all().execute()


def test_an_all_null_required_column_is_still_reported_as_null():
    msg = only_problem(events=events(event_type=[None, None, None]))
    assert "events.event_type: 3 of 3 rows is null" in msg


def test_integer_ids_beside_string_ids_become_strings():
    # customers holds "A1"-style ids, events an INTEGER column: the shared id type is text.
    source = source_from_frames(
        {
            "customers": customers(customer_id=["A1", "2", "3"]),
            "events": events(customer_id=pd.array([2, 2, 3], dtype="int32")),
        }
    )
    assert source.tables.events.customer_id.type().is_string()
    assert sorted(source.tables.events.customer_id.execute()) == ["2", "2", "3"]
