"""PostgreSQL data sources: the shared simulated company loaded into a real server (the `pg_dsn` fixture), read in
place, checked against the contract there, and giving the same features as its Parquet files."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from churn_pipeline.cli import _common, app
from churn_pipeline.core.config import Config, DataConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError, StaleDataError
from churn_pipeline.data.io import open_source
from churn_pipeline.features.build import feature_table
from churn_pipeline.features.labels import churn_labels
from tests.pg_helpers import load_company, password_only_role

pytestmark = pytest.mark.postgres
runner = CliRunner()
PASSWORD = "pg-s3cret-Zq7"


def _url(dsn: str, password: str | None = None) -> str:
    d = conninfo_to_dict(dsn)
    user = d["user"] + (f":{password}" if password else "")
    return f"postgresql://{user}@{d['host']}:{d['port']}/{d['dbname']}"


def _sql(dsn: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def pg_company(pg_dsn, company):
    """The shared company's tables in schema `company` of the test server; its URL (no password)."""
    load_company(pg_dsn, company.data_dir, "company")
    return _url(pg_dsn)


def _copy_schema(dsn: str, schema: str, *mutations: str) -> None:
    """Schema `schema` with a copy of every company table, then `mutations` (SQL, `{s}` = the schema)."""
    tables = ["customers", "events", "support_contacts", "surveys", "payments"]
    _sql(
        dsn,
        f"DROP SCHEMA IF EXISTS {schema} CASCADE",
        f"CREATE SCHEMA {schema}",
        *[f"CREATE TABLE {schema}.{t} AS SELECT * FROM company.{t}" for t in tables],
        *[m.format(s=schema) for m in mutations],
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("customer_id").reset_index(drop=True)


def test_postgres_tables_give_the_features_labels_and_report_of_the_parquet_files(pg_company, company):
    pg = open_source(pg_company, cfg=DataConfig(db_schema="company"))
    files = open_source(company.data_dir)
    assert pg.engine == "postgres" and files.engine == "duckdb"
    assert pg.data_end_date == files.data_end_date
    assert pg.report.tables == files.report.tables  # row counts, first/last dates, columns
    for name in files.tables.present():
        assert getattr(pg.tables, name).schema() == getattr(files.tables, name).schema(), name

    cfg = company.config.features
    for as_of in (files.data_end_date - dt.timedelta(days=45), files.data_end_date):
        from_pg = _sorted(feature_table(pg.tables, as_of, cfg).to_pyarrow().to_pandas())
        from_files = _sorted(feature_table(files.tables, as_of, cfg).to_pyarrow().to_pandas())
        assert list(from_pg.columns) == list(from_files.columns)
        assert len(from_pg) == len(from_files) > 1000
        pd.testing.assert_frame_equal(from_pg, from_files, check_exact=False, rtol=1e-9, atol=0)
        exact = [c for c in from_files.columns if not pd.api.types.is_float_dtype(from_files[c])]
        pd.testing.assert_frame_equal(from_pg[exact], from_files[exact], check_exact=True)

    as_of = files.data_end_date - dt.timedelta(days=60)
    labels_pg = _sorted(churn_labels(pg.tables, as_of, company.config.label).to_pyarrow().to_pandas())
    labels_files = _sorted(churn_labels(files.tables, as_of, company.config.label).to_pyarrow().to_pandas())
    pd.testing.assert_frame_equal(labels_pg, labels_files, check_exact=True)


def test_the_queries_run_on_the_server(pg_company):
    # Pushed down: the feature table compiles to one PostgreSQL query over the tables, nothing read before.
    pg = open_source(pg_company, cfg=DataConfig(db_schema="company"))
    expr = feature_table(pg.tables, pg.data_end_date, Config().features)
    sql = pg.con.compile(expr)
    assert '"company"."events"' in sql and '"company"."customers"' in sql
    assert expr._find_backend() is pg.con


BROKEN = {
    "missing column": (
        ["ALTER TABLE {s}.customers DROP COLUMN signup_date"],
        ["customers.signup_date", "required column is missing", "add it to the customers extract"],
    ),
    "duplicate id": (
        [
            "INSERT INTO {s}.customers SELECT * FROM {s}.customers WHERE customer_id IN (SELECT MIN(customer_id) FROM {s}.customers)"
        ],
        ["customers.customer_id", "1 ids appear more than once", "keep one row per customer"],
    ),
    "date held as text": (
        ["ALTER TABLE {s}.customers ALTER COLUMN signup_date TYPE text"],
        ["customers.signup_date", "type VARCHAR in the database", "ALTER TABLE", "TYPE date"],
    ),
    "empty table": (["DELETE FROM {s}.surveys"], ["surveys: table is empty"]),
    "future date": (
        [
            "UPDATE {s}.events SET ts = TIMESTAMP '2100-01-01' WHERE ctid IN (SELECT ctid FROM {s}.events LIMIT 2)"
        ],
        ["events.ts", "2 of", "is dated after", "--as-of"],
    ),
    "orphan rows": (
        ["INSERT INTO {s}.payments SELECT 987654321, ts, amount, status FROM {s}.payments LIMIT 3"],
        ["payments.customer_id", "3 rows refer to customers not in customers", "987654321"],
    ),
    "out of range": (
        ["UPDATE {s}.surveys SET nps = 11 WHERE ctid IN (SELECT ctid FROM {s}.surveys LIMIT 1)"],
        ["surveys.nps", "1 of", "is outside [0, 10]"],
    ),
    "days loaded twice in a log kept by date": (
        [
            "UPDATE {s}.events SET ts = date_trunc('day', ts)",
            "INSERT INTO {s}.events SELECT * FROM {s}.events WHERE ts < (SELECT MIN(ts) FROM {s}.events) + INTERVAL '60 days'",
        ],
        ["events (all columns equal", "repeat another row exactly", "drop the repeated rows"],
    ),
    "repeated rows": (
        ["INSERT INTO {s}.events SELECT * FROM {s}.events LIMIT 2000"],
        ["events (all columns equal", "repeat another row exactly", "duplicate_rows_error_share"],
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validate_on_postgres_names_table_column_and_fix(pg_company, pg_dsn, tmp_path, case):
    mutations, expected = BROKEN[case]
    schema = "broken_" + case.replace(" ", "_")
    _copy_schema(pg_dsn, schema, *mutations)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump({"data": {"source": pg_company, "db_schema": schema}}))
    result = runner.invoke(app, ["validate", "-c", str(cfg_path), "--as-of", "2025-01-01"])
    assert result.exit_code != 0, result.output
    flat = " ".join(result.output.split())
    for text in expected:
        assert text in flat, (text, result.output)
    assert "Traceback" not in result.output


def test_validate_on_postgres_passes_and_prints_the_summary(pg_company, tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump({"data": {"db_schema": "company"}}))
    result = runner.invoke(app, ["validate", "-c", str(cfg_path), "--data", pg_company])
    assert result.exit_code == 0, result.output
    assert f"data source {pg_company}: valid" in " ".join(result.output.split())
    assert "customers" in result.output and "fingerprint" in result.output


def test_zoned_timestamps_are_read_as_utc_whatever_the_session_time_zone(pg_company, pg_dsn):
    _copy_schema(
        pg_dsn, "zoned", "ALTER TABLE {s}.events ALTER COLUMN ts TYPE timestamptz USING ts AT TIME ZONE 'UTC'"
    )
    # the server would show these instants in Kolkata time (+05:30) to this session, were it not set to UTC
    kolkata = f"{pg_company}?options=-ctimezone%3DAsia/Kolkata"
    zoned = open_source(kolkata, cfg=DataConfig(db_schema="zoned")).tables.events
    plain = open_source(pg_company, cfg=DataConfig(db_schema="company")).tables.events
    assert zoned.schema() == plain.schema()
    order = ["customer_id", "ts", "event_type"]
    got = zoned.to_pyarrow().to_pandas().sort_values(order).reset_index(drop=True)
    want = plain.to_pyarrow().to_pandas().sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_fingerprint_follows_the_content(pg_company, pg_dsn):
    _copy_schema(pg_dsn, "fp")
    cfg = DataConfig(db_schema="fp")
    first = open_source(pg_company, cfg=cfg, validate=False).fingerprint
    assert open_source(pg_company, cfg=cfg, validate=False).fingerprint == first
    # an in-place correction keeps every count and date: the fingerprint still changes
    _sql(
        pg_dsn,
        "UPDATE fp.payments SET amount = amount + 1 WHERE ctid IN (SELECT ctid FROM fp.payments LIMIT 1)",
    )
    changed = open_source(pg_company, cfg=cfg, validate=False).fingerprint
    assert changed != first


def test_missing_schema_and_unreachable_server_are_config_errors_without_the_password(pg_company, pg_dsn):
    with pytest.raises(ConfigError, match="no customers table in schema 'nowhere'"):
        open_source(pg_company, cfg=DataConfig(db_schema="nowhere"))
    url = f"postgresql://someone:{PASSWORD}@127.0.0.1:1/db?connect_timeout=2"
    with pytest.raises(ConfigError, match="cannot reach the PostgreSQL data source") as err:
        open_source(url)
    assert PASSWORD not in str(err.value) and "postgresql://someone:***@127.0.0.1:1/db" in str(err.value)
    with pytest.raises(ConfigError, match="spark engine"):
        open_source(pg_company, cfg=DataConfig(engine="spark"))


def test_a_bad_row_in_a_typed_table_is_a_validation_error(pg_company, pg_dsn):
    _copy_schema(
        pg_dsn,
        "nulls",
        "UPDATE {s}.events SET event_type = NULL WHERE ctid IN (SELECT ctid FROM {s}.events LIMIT 4)",
    )
    with pytest.raises(DataValidationError, match=r"events.event_type: 4 of [\d,]+ rows is null"):
        open_source(pg_company, cfg=DataConfig(db_schema="nulls"))


def _reader(pg_dsn: str, role: str) -> str:
    """A role that must give PASSWORD and may only read schema company; its URL without the password."""
    dsn = password_only_role(pg_dsn, role, PASSWORD)
    _sql(
        pg_dsn,
        f"GRANT USAGE ON SCHEMA company TO {role}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA company TO {role}",
    )
    return _url(dsn)


def test_the_password_comes_from_pgpassword_and_a_wrong_one_is_a_clear_error(
    pg_company, pg_dsn, tmp_path, monkeypatch
):
    url = _reader(pg_dsn, "churn_env_reader")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump({"data": {"source": url, "db_schema": "company"}}))
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    ok = runner.invoke(app, ["validate", "-c", str(cfg_path)])
    assert ok.exit_code == 0, ok.output
    monkeypatch.setenv("PGPASSWORD", "not-" + PASSWORD)
    bad = runner.invoke(app, ["validate", "-c", str(cfg_path)])
    assert bad.exit_code == ConfigError.exit_code, bad.output
    flat = " ".join(bad.output.split())
    assert "cannot reach the PostgreSQL data source" in flat and "password authentication failed" in flat
    assert "PGPASSWORD" in flat and PASSWORD not in bad.output


@pytest.mark.slow
def test_train_and_score_from_postgres_and_the_password_stays_secret(
    pg_company, pg_dsn, company, tmp_path, caplog, monkeypatch
):
    # The CLI's logging setup replaces the root handlers (caplog's too): keep caplog, at DEBUG for every logger.
    monkeypatch.setattr(_common, "setup_logging", lambda verbose: None)
    caplog.set_level(logging.DEBUG)
    for name in ("mlflow", "alembic", "psycopg"):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    # A login that must give its password, given in the URL: every output must show it redacted.
    url = _reader(pg_dsn, "churn_reader").replace("churn_reader@", f"churn_reader:{PASSWORD}@")
    workdir = tmp_path / "work"
    settings = company.config_in(workdir).model_dump(mode="json")
    settings["data"].update(source=url, db_schema="company")
    settings["model"]["lightgbm"]["n_estimators"] = 60
    settings["model"]["tuning"]["trials"] = 1
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(settings))

    outputs = []
    for command in (["validate"], ["train"], ["score"]):
        result = runner.invoke(app, [*command, "-c", str(cfg_path)])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert "champion" in outputs[1]
    # stale data, seen on the server: scoring 10 days after the data ends fails before any output
    late = open_source(company.data_dir, validate=False).data_end_date + dt.timedelta(days=10)
    stale = runner.invoke(app, ["score", "-c", str(cfg_path), "--as-of", str(late)])
    assert stale.exit_code == StaleDataError.exit_code, stale.output
    assert "stale data: the newest events row" in " ".join(stale.output.split())
    outputs.append(stale.output)
    assert len(list((workdir / "scores").iterdir())) == 1
    scores = list((workdir / "scores").glob("*/at_risk.parquet"))
    assert len(scores) == 1 and len(pd.read_parquet(scores[0])) > 0
    manifest = next((workdir / "scores").glob("*/manifest.json")).read_text()
    assert "postgresql://churn_reader:***@" in manifest

    assert "postgresql://churn_reader:***@" in " ".join(outputs[0].split())
    assert not any(PASSWORD in out for out in outputs)
    assert caplog.records and PASSWORD not in caplog.text
    assert (workdir / "mlflow.db").is_file() and any((workdir / "training_sets").rglob("manifest.json"))
    leaked = [p for p in Path(workdir).rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert not leaked, leaked  # the MLflow store (sqlite + artifacts), manifests, training sets, scores
