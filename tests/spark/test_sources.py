"""Sources only Spark reads: a folder URL (`file:///`, the code path of s3a://, abfss://...) and a metastore schema
give the tables, the contract report and the feature table that DuckDB gives for the same data."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

from churn_pipeline.core.config import Config, DataConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError
from churn_pipeline.data.io import Source, open_source
from tests.pipeline.test_contract import contacts, customers, events, payments, surveys
from tests.pipeline.test_hostile_data import daily_purchases
from tests.spark.test_cli_engine import features_on_both_engines
from tests.spark.test_parity import _differences

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TODAY = dt.date(2025, 1, 15)
SPARK = DataConfig(engine="spark")


def url_of(folder: Path) -> str:
    return f"file://{folder.resolve()}"


def same_tables(expected: Source, got: Source) -> None:
    """Same tables, same ibis schemas, same rows."""
    assert got.tables.present() == expected.tables.present()
    for name in expected.tables.present():
        a, b = getattr(expected.tables, name), getattr(got.tables, name)
        assert b.schema() == a.schema(), name
        left, right = a.to_pandas(), b.to_pandas()[list(a.columns)]
        keys = list(left.columns)
        left = left.sort_values(keys).reset_index(drop=True)
        right = right.sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(
            left, right, check_dtype=False
        )  # DuckDB gives datetime64[us], Spark [ns]


def test_a_folder_url_gives_what_the_local_folder_gives(spark, small_company: Config) -> None:
    folder = Path(small_company.data.source)
    duck = open_source(folder, cfg=DataConfig(), today=TODAY)
    lake = open_source(url_of(folder), cfg=SPARK, today=TODAY)
    assert (lake.engine, lake.label, lake.path) == ("spark", url_of(folder), None)
    assert lake.report == duck.report and lake.report.tables["events"].rows > 1000
    assert lake.data_end_date == duck.data_end_date
    same_tables(duck, lake)
    assert open_source(url_of(folder), cfg=SPARK, validate=False).fingerprint == lake.fingerprint


def test_features_from_a_folder_url_are_the_duckdb_features(
    spark, small_company: Config, tmp_path: Path
) -> None:
    folder = Path(small_company.data.source)
    expected, written = features_on_both_engines(folder, url_of(folder), tmp_path)
    assert len(expected) > 200 and expected.shape[1] > 30
    assert list(written.columns) == list(expected.columns)
    assert _differences(expected, written) == []


@pytest.fixture(scope="module")
def metastore_db(spark, small_company: Config, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The small company's tables saved as managed tables of a new database of the session's catalog."""
    name = f"churn_{uuid.uuid4().hex[:8]}"
    location = tmp_path_factory.mktemp("metastore") / name
    # The catalog creates its (empty) default warehouse folder in the working directory: not left behind
    warehouse = Path(urlparse(spark.conf.get("spark.sql.warehouse.dir")).path)
    existed = warehouse.exists()
    spark.sql(f"CREATE DATABASE {name} LOCATION '{location.as_uri()}'")
    for part in sorted(Path(small_company.data.source).glob("*.parquet")):
        spark.read.parquet(str(part)).write.saveAsTable(f"{name}.{part.stem}")
    yield name
    spark.sql(f"DROP DATABASE {name} CASCADE")
    if not existed and warehouse.is_dir() and not any(warehouse.iterdir()):
        warehouse.rmdir()


def test_a_metastore_schema_gives_what_the_folder_gives(
    spark, small_company: Config, metastore_db: str
) -> None:
    duck = open_source(Path(small_company.data.source), cfg=DataConfig(), today=TODAY)
    catalog = spark.catalog.currentCatalog()
    meta = open_source(f"metastore:{catalog}.{metastore_db}", cfg=SPARK, today=TODAY)
    assert (meta.engine, meta.label) == ("spark", f"metastore:{catalog}.{metastore_db}")
    assert meta.report == duck.report
    assert meta.data_end_date == duck.data_end_date
    same_tables(duck, meta)
    # The schema alone (the session's current catalog) names the same tables
    short = open_source(f"metastore:{metastore_db}", cfg=SPARK, today=TODAY, validate=False)
    assert short.tables.present() == meta.tables.present()
    # Any changed row changes the fingerprint (the training-set cache must not serve stale sets)
    spark.sql(f"INSERT INTO {metastore_db}.surveys SELECT * FROM {metastore_db}.surveys LIMIT 1")
    changed = open_source(f"metastore:{metastore_db}", cfg=SPARK, today=TODAY, validate=False)
    assert changed.fingerprint != short.fingerprint


def test_a_schema_without_the_customers_table_is_a_config_error(spark) -> None:
    with pytest.raises(ConfigError, match=r"metastore:no_such_schema has no customers table.*<catalog>"):
        open_source("metastore:no_such_schema", cfg=SPARK)


def write_company(folder: Path, **frames: pd.DataFrame) -> Path:
    folder.mkdir(parents=True)
    for name, frame in frames.items():
        # Spark cannot read pandas' default nanosecond timestamps
        frame.to_parquet(folder / f"{name}.parquet", index=False, coerce_timestamps="us")
    return folder


def problems_on_both(folder: Path) -> tuple[list[str], list[str]]:
    """The contract problems DuckDB and Spark report for the same files."""
    found = []
    for source, cfg in ((folder, DataConfig()), (url_of(folder), SPARK)):
        with pytest.raises(DataValidationError) as info:
            open_source(source, cfg=cfg, today=TODAY)
        found.append(info.value.problems)
    return found[0], found[1]


def test_row_defects_give_the_duckdb_report_on_spark(spark, tmp_path: Path) -> None:
    twice = pd.concat([contacts(), contacts()], ignore_index=True)  # every row repeated: an error
    folder = write_company(
        tmp_path / "company",
        # id 2 twice; a date that is no date (a text column: both engines try each value)
        customers=customers(
            customer_id=[1, 2, 2],
            signup_date=["2024-01-01", "2024-13-45", "2024-03-01"],
            plan=["a", None, "b"],
        ),
        events=events(
            customer_id=[1, 9, 8], amount=[None, float("inf"), float("nan")]
        ),  # orphans, not finite
        support_contacts=twice,
        surveys=surveys(nps=[9, 11]),
        payments=payments(status=["paid", "bogus"], ts=pd.to_datetime(["2024-04-01", "2099-01-01"])),
    )
    duck, on_spark = problems_on_both(folder)
    assert len(duck) >= 8, duck
    for expected in (
        "more than once",
        "not a parseable date",
        "not in customers",
        "repeat another row",
        "2099",
    ):
        assert any(expected in p for p in duck), expected
    assert on_spark == duck


def test_date_only_repeats_give_the_duckdb_report_on_spark(spark, tmp_path: Path) -> None:
    log = daily_purchases(days=20, per_day=10)
    # a day loaded twice in a log kept by date: an error on both engines
    folder = write_company(
        tmp_path / "reloaded",
        customers=customers(),
        events=pd.concat([log, log.iloc[50:60]], ignore_index=True),
    )
    duck, on_spark = problems_on_both(folder)
    assert any(p.startswith("events") and "repeat another row" in p for p in duck)
    assert on_spark == duck
    # scattered same-day repeats in the same kind of log: a warning on both
    folder = write_company(
        tmp_path / "scattered",
        customers=customers(),
        events=pd.concat([log, log.iloc[[3, 25, 47, 88, 120, 161]]], ignore_index=True),
    )
    duck_source = open_source(folder, cfg=DataConfig(), today=TODAY)
    spark_source = open_source(url_of(folder), cfg=SPARK, today=TODAY)
    assert duck_source.report.problems == spark_source.report.problems == []
    assert duck_source.report.warnings == spark_source.report.warnings
    assert any("no time of day" in w for w in duck_source.report.warnings)


def test_schema_defects_give_the_duckdb_report_on_spark(spark, tmp_path: Path) -> None:
    folder = write_company(
        tmp_path / "company",
        customers=customers().drop(columns=["signup_date"]),  # a required column missing
        events=events().iloc[:0],  # an empty table
        surveys=surveys(nps=["nine", "three"]).astype({"customer_id": float}),  # float ids: wrong type
    )
    duck, on_spark = problems_on_both(folder)
    assert any("signup_date: required column is missing" in p for p in duck)
    assert any("events: table is empty" in p for p in duck)
    assert any("surveys.customer_id: wrong type DOUBLE" in p for p in duck)
    assert on_spark == duck


def test_a_delta_folder_is_not_read_as_parquet(spark, small_company: Config, tmp_path: Path) -> None:
    # This Spark has no Delta jars (they come from Maven): the folder must not be read as plain Parquet, whose
    # files include the ones Delta's log has removed
    folder = tmp_path / "company"
    folder.mkdir()
    source = Path(small_company.data.source)
    (folder / "customers").mkdir()
    shutil.copy(source / "customers.parquet", folder / "customers" / "part-00000.parquet")
    (folder / "customers" / "_delta_log").mkdir()
    (folder / "customers" / "_delta_log" / "00000000000000000000.json").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"customers/ is a Delta table.*metastore:<catalog>.<schema>"):
        open_source(url_of(folder), cfg=SPARK)
