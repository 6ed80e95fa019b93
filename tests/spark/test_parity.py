"""Same definitions, same numbers: the feature table of a simulated company on Spark equals DuckDB's."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import open_source
from churn_pipeline.data.spark import spark_session
from churn_pipeline.features.catalog import family
from churn_pipeline.stages.training_set import compute_features, in_customer_order

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _on(cfg: Config, engine: str) -> Config:
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"engine": engine})})


def _differences(duck: pd.DataFrame, spark: pd.DataFrame) -> list[str]:
    """'family/column: why' for every column that differs (exact for counts, dates and categories, 1e-9 rel for floats)."""
    out = []
    for name in duck.columns:
        a, b = duck[name], spark[name]
        try:
            if pd.api.types.is_float_dtype(a):
                pd.testing.assert_series_equal(a, b, check_exact=False, rtol=1e-9, atol=0)
            elif isinstance(a.dtype, pd.CategoricalDtype):
                pd.testing.assert_series_equal(a.astype(object), b.astype(object))
            else:
                pd.testing.assert_series_equal(a, b, check_exact=True)
        except AssertionError as e:
            out.append(f"{family(name)}/{name}: {str(e).splitlines()[0]}")
    return out


def test_feature_table_on_spark_equals_duckdb(spark, small_company: Config) -> None:
    duck_source = open_source(small_company.data.source, cfg=small_company.data)
    spark_source = open_source(small_company.data.source, cfg=_on(small_company, "spark").data)
    assert (duck_source.engine, spark_source.engine) == ("duckdb", "spark")
    assert spark_source.data_end_date == duck_source.data_end_date
    as_of = duck_source.data_end_date - dt.timedelta(days=20)
    duck = in_customer_order(compute_features(small_company, as_of, duck_source))
    on_spark = in_customer_order(compute_features(small_company, as_of, spark_source))
    assert len(duck) > 200, "the company must have customers to compare"
    families = {family(c) for c in duck.columns if c != "customer_id"}
    assert {"activity", "frequency", "support", "payments"} <= families
    assert list(on_spark.columns) == list(duck.columns)
    assert list(on_spark.dtypes) == list(duck.dtypes)
    assert _differences(duck, on_spark) == []


def test_a_changed_value_is_a_difference() -> None:
    """Guards the comparison above: a float beyond 1e-9 relative, or a count off by one, is reported."""
    duck = pd.DataFrame({"events_7d": [1, 2], "spend_30d": [10.0, 1.0]})
    assert _differences(duck, duck.copy()) == []
    assert len(_differences(duck, duck.assign(spend_30d=[10.0 * (1 + 1e-8), 1.0]))) == 1
    assert len(_differences(duck, duck.assign(events_7d=[1, 3]))) == 1


def test_spark_reads_parquet_only(spark, tmp_path, small_company: Config) -> None:
    frame = pd.read_parquet(small_company.data.source / "customers.parquet")
    frame.to_csv(tmp_path / "customers.csv", index=False)
    with pytest.raises(ConfigError, match="customers.csv is CSV, and the spark engine reads Parquet only"):
        open_source(tmp_path, cfg=_on(small_company, "spark").data)


def test_the_session_is_the_active_one(spark) -> None:
    """A session from the environment (spark-submit, Databricks, here the test session's) is used, not a new one."""
    assert spark_session() is spark
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_a_folder_of_parts_on_spark_holds_the_same_rows(spark, tmp_path, small_company: Config) -> None:
    for table in small_company.data.source.glob("*.parquet"):
        shutil.copy(table, tmp_path / table.name)
    events = pd.read_parquet(tmp_path / "events.parquet")
    (tmp_path / "events.parquet").unlink()
    (tmp_path / "events").mkdir()
    half = len(events) // 2
    events.iloc[:half].to_parquet(tmp_path / "events" / "part-0.parquet", index=False)
    events.iloc[half:].to_parquet(tmp_path / "events" / "part-1.parquet", index=False)
    on_spark = open_source(tmp_path, cfg=_on(small_company, "spark").data)
    counted = on_spark.tables.events.group_by("event_type").agg(n=on_spark.tables.events.count()).execute()
    expected = events.groupby("event_type").size()
    assert dict(zip(counted.event_type, counted.n, strict=True)) == expected.to_dict()
    assert on_spark.tables.events.schema() == open_source(tmp_path).tables.events.schema()
