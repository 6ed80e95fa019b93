"""Postgres export against a real PostgreSQL server started (and stopped) by the `pg_dsn` fixture
(tests/conftest.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import ExportError
from churn_pipeline.stages.export import run_export
from tests.pipeline.test_export import AS_OF, make_at_risk, publish

pytestmark = pytest.mark.postgres


def _rows(dsn: str, table: str = "churn_at_risk"):
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(
            f"SELECT customer_id, as_of, churn_probability, risk_tier, reason_1, rank FROM {table} "
            "ORDER BY as_of, rank"
        ).fetchall()


def _cfg(tmp_path, dsn, table="churn_at_risk") -> Config:
    return Config(workdir=tmp_path / "work", export={"postgres": {"dsn": dsn, "table": table}})


def test_rerunning_the_export_never_duplicates_and_updates_changed_rows(tmp_path, pg_dsn, monkeypatch):
    monkeypatch.delenv("CHURN_PG_DSN", raising=False)
    cfg = _cfg(tmp_path, pg_dsn, table="at_risk_rerun")
    first = make_at_risk(40, seed=1)
    publish(cfg, first)

    r1 = run_export(cfg, AS_OF, "postgres")
    assert r1.details.inserted == 40 and r1.details.updated == 0
    r2 = run_export(cfg, AS_OF, "postgres")
    assert r2.details.inserted == 0 and r2.details.updated == 40
    rows = _rows(pg_dsn, "at_risk_rerun")
    assert len(rows) == 40 and len({(r[0], r[1]) for r in rows}) == 40
    assert [r[0] for r in rows] == first["customer_id"].tolist()

    # The date is re-scored: probabilities change, one customer leaves the list, one joins.
    second = make_at_risk(40, seed=2)
    second.loc[second.index[-1], "customer_id"] = "C9999"
    publish(cfg, second)
    r3 = run_export(cfg, AS_OF, "postgres")
    assert (r3.details.inserted, r3.details.updated, r3.details.removed) == (1, 39, 1)
    by_id = {r[0]: r for r in _rows(pg_dsn, "at_risk_rerun")}
    assert len(by_id) == 40 and "C0039" not in by_id and "C9999" in by_id
    for cid, p in zip(second["customer_id"], second["churn_probability"], strict=True):
        assert by_id[cid][2] == pytest.approx(p, abs=1e-6)
    assert by_id["C0000"][1] == AS_OF and by_id["C0000"][4] == second["reason_1"].iloc[0]


def test_dates_are_kept_apart_and_dsn_comes_from_env(tmp_path, pg_dsn, monkeypatch):
    monkeypatch.setenv("CHURN_PG_DSN", pg_dsn)
    cfg = _cfg(tmp_path, "host=127.0.0.1 port=1 dbname=nowhere", table="at_risk_dates")  # env overrides this
    later = AS_OF + dt.timedelta(days=1)
    publish(cfg, make_at_risk(5, seed=3))
    publish(cfg, make_at_risk(7, as_of=later, seed=4), as_of=later)
    run_export(cfg, AS_OF, "postgres")
    run_export(cfg, later, "postgres")
    rows = _rows(pg_dsn, "at_risk_dates")
    assert sum(r[1] == AS_OF for r in rows) == 5 and sum(r[1] == later for r in rows) == 7


def test_cli_export_postgres_prints_delivery_summary(tmp_path, pg_dsn, monkeypatch):
    monkeypatch.setenv("CHURN_PG_DSN", pg_dsn)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"workdir: {tmp_path / 'work'}\nexport:\n  postgres:\n    table: at_risk_cli\n")
    publish(Config(workdir=tmp_path / "work"), make_at_risk(6))
    result = CliRunner().invoke(
        app, ["export", "-c", str(cfg_path), "--as-of", str(AS_OF), "--to", "postgres"]
    )
    assert result.exit_code == 0, result.output
    assert "6 inserted" in result.output
    assert len(_rows(pg_dsn, "at_risk_cli")) == 6


def test_unreachable_server_and_bad_schema_are_export_errors(tmp_path, pg_dsn, monkeypatch):
    monkeypatch.delenv("CHURN_PG_DSN", raising=False)
    cfg = _cfg(tmp_path, "host=127.0.0.1 port=1 dbname=postgres user=x password=s3cret connect_timeout=2")
    publish(cfg, make_at_risk(3))
    with pytest.raises(ExportError, match="cannot reach PostgreSQL") as err:
        run_export(cfg, AS_OF, "postgres")
    assert "s3cret" not in str(err.value)

    # A schema that does not exist: the transaction rolls back and the message names the table.
    missing_schema = _cfg(tmp_path, pg_dsn, table="nowhere.at_risk")
    with pytest.raises(ExportError, match="nowhere.at_risk"):
        run_export(missing_schema, AS_OF, "postgres")


def test_postgres_url_dsn_from_env_is_shown_with_its_password_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_PG_DSN", "postgresql://churn:s3cret@127.0.0.1:1/crm?connect_timeout=2")
    cfg = Config(workdir=tmp_path / "work")
    publish(cfg, make_at_risk(3))
    with pytest.raises(ExportError, match="cannot reach PostgreSQL") as err:
        run_export(cfg, AS_OF, "postgres")
    assert "postgresql://churn:***@127.0.0.1:1/crm?connect_timeout=***" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_a_table_of_an_older_layout_gains_the_group_column(tmp_path, pg_dsn, monkeypatch):
    import psycopg

    monkeypatch.delenv("CHURN_PG_DSN", raising=False)
    with psycopg.connect(pg_dsn) as conn:  # the layout before control groups: no `group` column
        conn.execute(
            "CREATE TABLE at_risk_old (customer_id text NOT NULL, as_of date NOT NULL, rank integer NOT NULL, "
            "churn_probability double precision NOT NULL, risk_tier text, expected_value_at_risk double precision, "
            "reason_1 text, reason_2 text, reason_3 text, suggested_action text, model_version text NOT NULL, "
            "exported_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (customer_id, as_of))"
        )
        conn.execute("INSERT INTO at_risk_old VALUES ('OLD1', '2025-01-31', 1, 0.9, 'critical', 1, "
                     "NULL, NULL, NULL, 'call', '1')")  # fmt: skip
    cfg = _cfg(tmp_path, pg_dsn, table="at_risk_old")
    frame = make_at_risk(20, seed=4)
    publish(cfg, frame)

    assert run_export(cfg, AS_OF, "postgres").details.inserted == 20
    with psycopg.connect(pg_dsn) as conn:
        got = dict(conn.execute('SELECT customer_id, "group" FROM at_risk_old').fetchall())
    assert got.pop("OLD1") == "treatment"  # rows exported before control groups existed
    assert got == dict(zip(frame["customer_id"], frame["group"], strict=True))
