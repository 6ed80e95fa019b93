"""`churn --help`, `churn validate` and `churn features` through the real CLI app."""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.features.catalog import family
from tests.pipeline.test_contract import customers, events

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in (
        "simulate",
        "validate",
        "features",
        "build-training-set",
        "train",
        "evaluate",
        "score",
        "export",
        "kpis",
        "campaign-report",
        "train-uplift",
    ):
        assert command in result.output, command


def test_validate_prints_a_summary(tmp_path):
    customers().to_parquet(tmp_path / "customers.parquet", index=False)
    events().to_parquet(tmp_path / "events.parquet", index=False)
    result = runner.invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert "2024-05-01" in result.output  # last date in the data
    assert "support_contacts" in result.output  # named as absent


def test_validate_fails_with_exit_code_3_and_names_the_problem(tmp_path):
    customers(customer_id=[1, 1, 2]).to_parquet(tmp_path / "customers.parquet", index=False)
    result = runner.invoke(app, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 3
    assert "customers.customer_id" in result.output and "more than once" in result.output


def test_unknown_config_key_exits_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  sauce: x\n")
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "unknown key 'data.sauce'" in result.output


def test_features_writes_the_table_and_counts_features_per_family(company, tmp_path):
    result = runner.invoke(app, ["features", "--data", str(company.data_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = list((tmp_path / "features").glob("as_of=*.parquet"))
    assert len(written) == 1
    names = [c for c in pd.read_parquet(written[0]).columns if c != "customer_id"]
    shown = {m[1]: int(m[2]) for m in re.finditer(r"│ (\w+) +│ +(\d+) │", result.output)}
    assert shown.pop("total") == len(names)
    assert shown == dict(Counter(family(n) for n in names))


def test_validate_with_a_malformed_as_of_exits_2(tmp_path):
    customers().to_parquet(tmp_path / "customers.parquet", index=False)
    result = runner.invoke(app, ["validate", "--data", str(tmp_path), "--as-of", "2024-13-01"])
    assert result.exit_code == 2
    assert "--as-of '2024-13-01' is not a date" in result.output


def test_every_command_that_reads_data_takes_engine_and_rejects_an_unknown_one(tmp_path):
    customers().to_parquet(tmp_path / "customers.parquet", index=False)
    commands = ["validate", "features", "build-training-set", "train", "evaluate", "score", "kpis"]
    commands += ["campaign-report", "train-uplift"]
    for command in commands:
        result = runner.invoke(app, [command, "--data", str(tmp_path), "--engine", "polars"])
        assert result.exit_code == 2, (command, result.output)
        assert "--engine 'polars'" in result.output and "'duckdb' or 'spark'" in result.output, command
