"""Spark-only data sources without Spark: how folder URLs and `metastore:` schemas are recognised, redacted and
refused by the DuckDB engine, and what the contract's SQL becomes in Spark's dialect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.config import Config, DataConfig, metastore_schema
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data import spark
from churn_pipeline.data.io import open_source
from churn_pipeline.data.warehouse import to_spark


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("s3a://bucket/company/", "lake"),
        ("abfss://lake@account.dfs.core.windows.net/churn", "lake"),
        ("gs://bucket/churn", "lake"),
        ("hdfs://namenode:8020/churn", "lake"),
        ("dbfs:/mnt/churn", "lake"),
        ("file:///data/company", "lake"),
        ("metastore:main.churn", "metastore"),
        ("metastore:churn", "metastore"),
        ("postgresql://analyst@db:5432/crm", "database"),
        ("data/company", "files"),
        ("C:/data/company", "files"),
    ],
)
def test_source_kinds(source: str, kind: str) -> None:
    cfg = DataConfig(source=source)
    assert cfg.source_kind == kind
    assert cfg.source_label == source  # no secret in these: shown as written
    assert (cfg.source_url is None) == (kind == "files")


def test_a_secret_in_a_folder_url_is_redacted_in_labels_and_dumps() -> None:
    cfg = Config(data={"source": "s3a://AKIAEXAMPLE:s3cr3t@bucket/company/", "engine": "spark"})
    assert cfg.data.source_label == "s3a://AKIAEXAMPLE:***@bucket/company/"
    dumped = cfg.model_dump_json()
    assert "s3cr3t" not in dumped
    assert json.loads(dumped)["data"]["source"] == "s3a://AKIAEXAMPLE:***@bucket/company/"
    assert cfg.data.source_url == "s3a://AKIAEXAMPLE:s3cr3t@bucket/company/"


def test_metastore_names() -> None:
    assert metastore_schema("metastore:main.churn") == ("main", "churn")
    assert metastore_schema("metastore:churn_2024") == ("churn_2024",)
    for bad in ("metastore:a.b.c", "metastore:", "metastore:main.", "metastore:ma in"):
        with pytest.raises(ValidationError, match="metastore:<catalog>.<schema>"):
            DataConfig(source=bad)


def test_an_unknown_url_scheme_names_what_is_accepted() -> None:
    with pytest.raises(ValidationError, match="'ftp' is not supported.*s3a.*metastore:<catalog>.<schema>"):
        DataConfig(source="ftp://files.example.com/churn")


def test_cli_overrides_take_folder_urls_and_metastore_schemas() -> None:
    cfg = Config().with_overrides(data="s3a://bucket/company/", engine="spark")
    assert (cfg.data.source_kind, cfg.data.engine) == ("lake", "spark")
    assert Config().with_overrides(data="metastore:main.churn").data.source_kind == "metastore"


@pytest.mark.parametrize(
    ("source", "what"),
    [("s3a://u:pw@bucket/company", "a folder URL"), ("metastore:main.churn", "a metastore schema")],
)
def test_the_duckdb_engine_refuses_spark_sources_before_starting_spark(
    source: str, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_spark() -> None:
        raise AssertionError("Spark was started")

    monkeypatch.setattr(spark, "connect", no_spark)
    with pytest.raises(ConfigError) as info:
        open_source(DataConfig(source=source).source, cfg=DataConfig())
    message = str(info.value)
    assert what in message and "data.engine: spark" in message and "local folder" in message
    assert "pw" not in message


def test_validate_on_the_duckdb_engine_with_a_folder_url_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "--data", f"file://{tmp_path}"])
    assert result.exit_code == 2, result.output
    assert "only Spark reads" in result.output and "--engine spark" in result.output


def test_contract_sql_in_sparks_dialect() -> None:
    # Each DuckDB construct Spark lacks, rewritten (the Spark tests run them and compare the reports)
    exists = to_spark('SELECT NOT EXISTS (SELECT 1 FROM "v")')
    assert exists == "SELECT NOT (SELECT COUNT(*) > 0 FROM (SELECT 1 FROM `v` LIMIT 1) AS `__exists`)"
    hashed = to_spark(
        'SELECT * FROM "v" AS "r" WHERE hash("r") IN (SELECT UNNEST(CAST(? AS UBIGINT[])))', [[7, -3]]
    )
    assert "XXHASH64(*) IN (SELECT EXPLODE(CAST(ARRAY(7, -3) AS ARRAY<BIGINT>)))" in hashed
    listed = to_spark("SELECT LIST(DISTINCT id ORDER BY id)[1:3] FROM t")
    assert listed == (
        "SELECT TRANSFORM(SLICE(ARRAY_SORT(COLLECT_SET(STRUCT(id AS `k0`, id AS `v`))), 1, 3), `__s` -> `__s`.`v`) "
        "FROM t"
    )
    finite = to_spark("SELECT COUNT(*) FILTER (WHERE NOT isfinite(x)) FROM t")
    assert "ISFINITE" not in finite.upper() and "CAST('NaN' AS DOUBLE)" in finite
    assert to_spark("SELECT CAST(x AS TIMESTAMP), CAST(y AS VARCHAR)") == (
        "SELECT CAST(x AS TIMESTAMP_NTZ), CAST(y AS STRING)"
    )
