"""The whole feature table: active set, defaults for customers without rows, types, missing tables."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import source_from_frames
from churn_pipeline.features.build import categorical_features, feature_table
from tests.features.synthetic import AS_OF, customers, frame, random_frames, source

CFG = FeatureConfig(important_event_types=("login",), event_types=("login",))


def _customers() -> pd.DataFrame:
    df = customers(
        (1, "2024-01-01", None),
        (2, "2024-06-30", None),  # signed up on t
        (3, "2024-01-01", "2024-06-15"),  # churned before t
        (4, "2024-01-01", "2024-06-30"),  # churned on t: not active at the end of t
        (5, "2024-01-01", "2024-07-01"),  # churns the day after t: active
        (6, "2024-07-02", None),  # signs up after t
    )
    df["plan"] = ["basic", "pro", "pro", "basic", "pro", "basic"]
    return df


def _frames() -> dict[str, pd.DataFrame]:
    return {
        "customers": _customers(),
        "events": frame(
            "customer_id ts event_type amount",
            [
                (1, "2024-06-29 10:00", "login", None),
                (3, "2024-06-01 10:00", "login", None),
                (5, "2024-02-01 10:00", "login", None),  # only before the 90-day activity span
                (6, "2024-07-03 10:00", "login", None),
            ],
        ),
        "support_contacts": frame(
            "customer_id ts channel is_complaint response_minutes resolved_ts csat",
            [(1, "2024-06-28 10:00", "chat", True, 5.0, None, None)],
        ),
        "surveys": frame("customer_id ts nps", [(1, "2024-06-01 10:00", 3)]),
        "payments": frame("customer_id ts amount status", [(1, "2024-06-01 10:00", 10.0, "failed")]),
    }


def test_one_row_per_active_customer_only() -> None:
    df = feature_table(source_from_frames(_frames()).tables, AS_OF, CFG).execute()
    assert sorted(df["customer_id"]) == [1, 2, 5]
    assert df["customer_id"].is_unique


def test_customers_without_rows_get_zero_counts_and_null_recency() -> None:
    df = feature_table(source_from_frames(_frames()).tables, AS_OF, CFG).execute().set_index("customer_id")
    assert (
        df.loc[1, "events_30d"] == 1
        and df.loc[1, "complaints_7d"] == 1
        and df.loc[1, "failed_payments_30d"] == 1
    )
    assert df.loc[1, "open_contacts"] == 1 and df.loc[1, "nps_detractor"] == 1
    for count in (
        "events_30d",
        "active_days_90d",
        "events_login_7d",
        "contacts_30d",
        "complaints_90d",
        "open_contacts",
        "failed_payments_90d",
        "nps_detractor",
        "price_rise",
    ):
        assert df.loc[2, count] == 0, count
    for money in ("spend_30d", "paid_amount_90d"):
        assert df.loc[2, money] == 0.0, money
    for unknown in (
        "days_since_last_event",
        "days_since_last_login",
        "days_since_last_contact",
        "nps_last",
        "events_trend_30_vs_prev60",
        "csat_mean_30d",
        "last_paid_amount",
        "days_since_last_payment",
    ):
        assert pd.isna(df.loc[2, unknown]), unknown
    assert df.loc[1, "days_since_last_event"] == 1.0 and df.loc[5, "tenure_days"] == 181.0
    assert df.loc[5, "days_since_last_event"] == 150.0 and df.loc[5, "days_since_last_login"] == 150.0
    assert df.loc[5, "events_90d"] == 0 and pd.isna(df.loc[5, "events_trend_30_vs_prev60"])


def test_column_types() -> None:
    table = feature_table(source_from_frames(_frames()).tables, AS_OF, CFG)
    schema = table.schema()
    assert table.columns[0] == "customer_id"
    assert (
        schema["events_30d"].is_integer()
        and schema["nps_detractor"].is_integer()
        and schema["price_rise"].is_integer()
    )
    assert schema["days_since_last_event"].is_floating() and schema["nps_last"].is_floating()
    assert schema["spend_30d"].is_floating()
    assert categorical_features(table) == ["plan"]


def test_missing_optional_tables_drop_their_families(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="features"):
        table = feature_table(source(customers=_customers()).tables, AS_OF, CFG)
    assert table.columns == ("customer_id", "tenure_days", "plan")
    assert sorted(table.execute()["customer_id"]) == [1, 2, 5]
    for table_name in ("events table", "support_contacts table", "surveys table", "payments table"):
        assert f"{table_name} not in the data source" in caplog.text


@pytest.mark.parametrize("present", ["events", "support_contacts", "surveys", "payments"])
def test_each_optional_table_alone(present: str) -> None:
    frames = _frames()
    table = feature_table(
        source_from_frames({"customers": frames["customers"], present: frames[present]}).tables, AS_OF, CFG
    )
    df = table.execute()
    assert len(df) == 3
    expected = {
        "events": "events_30d",
        "support_contacts": "contacts_30d",
        "surveys": "nps_last",
        "payments": "paid_amount_30d",
    }
    assert expected[present] in df.columns
    others = set(expected.values()) - {expected[present]}
    assert not others & set(df.columns)


def test_attribute_colliding_with_a_feature_name_is_a_config_error() -> None:
    frames = _frames()
    frames["customers"]["events_30d"] = 1.0
    with pytest.raises(ConfigError, match=r"\['events_30d'\].*exclude_attributes"):
        feature_table(source_from_frames(frames).tables, AS_OF, CFG)


def test_string_customer_ids() -> None:
    frames = _frames()
    for df in frames.values():
        df["customer_id"] = "c-" + df["customer_id"].astype(str)
    df = feature_table(source_from_frames(frames).tables, AS_OF, CFG).execute().set_index("customer_id")
    assert sorted(df.index) == ["c-1", "c-2", "c-5"]
    assert df.loc["c-1", "events_30d"] == 1


def test_no_infinities_and_unique_ids_on_random_data() -> None:
    frames = random_frames(seed=3, n_customers=120)
    as_of = dt.date(2024, 7, 15)
    df = feature_table(source_from_frames(frames).tables, as_of, CFG).execute()
    c = frames["customers"]
    active = c[
        (c.signup_date <= pd.Timestamp(as_of)) & (c.churn_date.isna() | (c.churn_date > pd.Timestamp(as_of)))
    ]
    assert sorted(df["customer_id"]) == sorted(active["customer_id"])
    numeric = df.select_dtypes("number")
    assert not numeric.isin([float("inf"), float("-inf")]).any().any()


def test_definitions_compile_for_spark_sql() -> None:
    """The same ibis definitions translate to Spark SQL (no DuckDB-only functions), as a Spark backend needs."""
    import ibis

    from churn_pipeline.core.config import LabelConfig
    from churn_pipeline.core.tables import SourceTables
    from churn_pipeline.features.labels import churn_labels

    schemas = {
        "customers": {"customer_id": "int64", "signup_date": "date", "churn_date": "date", "plan": "string"},
        "events": {"customer_id": "int64", "ts": "timestamp", "event_type": "string", "amount": "float64"},
        "support_contacts": {
            "customer_id": "int64", "ts": "timestamp", "channel": "string", "is_complaint": "boolean",
            "response_minutes": "float64", "resolved_ts": "timestamp", "csat": "int64",
        },
        "surveys": {"customer_id": "int64", "ts": "timestamp", "nps": "int64"},
        "payments": {"customer_id": "int64", "ts": "timestamp", "amount": "float64", "status": "string"},
    }  # fmt: skip
    tables = SourceTables(**{name: ibis.table(schema, name=name) for name, schema in schemas.items()})
    sql = ibis.to_sql(feature_table(tables, AS_OF, CFG), dialect="databricks")
    for spark_function in (
        "MAX_BY",
        "BIT_COUNT",
        "SHIFTLEFT",
        "DATEDIFF",
        "LAG(",
        "PERCENTILE(",
        "STDDEV_SAMP(",
    ):
        assert spark_function in sql
    for kind in ("cancellation", "inactivity"):
        assert "SELECT" in ibis.to_sql(
            churn_labels(tables, AS_OF, LabelConfig(kind=kind)), dialect="databricks"
        )


def test_attribute_named_like_tenure_is_a_config_error() -> None:
    frames = _frames()
    frames["customers"]["tenure_days"] = 3.0
    with pytest.raises(ConfigError, match=r"\['tenure_days'\]"):
        feature_table(source_from_frames(frames).tables, AS_OF, CFG)
