"""`churn simulate`: options, defaults, summary, and clear errors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from churn_pipeline.cli import app

runner = CliRunner()


def test_simulate_writes_data_and_truth_and_prints_a_summary(tmp_path):
    out = tmp_path / "company"
    result = runner.invoke(
        app, ["simulate", "--out", str(out), "--customers", "400", "--months", "3", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    assert pq.ParquetFile(out / "customers.parquet").metadata.num_rows == 400
    truth = tmp_path / "company_truth"  # default: <out>_truth
    meta = json.loads((truth / "truth.json").read_text())
    assert meta["seed"] == 4 and meta["end_date"] == "2024-03-31"
    for word in (
        "customers",
        "events",
        "support_contacts",
        "surveys",
        "payments",
        "monthly churn rate",
        "2024-03-31",
    ):
        assert word in result.output


def test_config_sets_defaults_and_options_override_them(tmp_path):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(
        f"data:\n  source: {tmp_path / 'data'}\n  oracle: {tmp_path / 'truth'}\n"
        "simulation:\n  customers: 300\n  months: 3\n  start_date: 2023-05-01\n"
    )
    result = runner.invoke(app, ["simulate", "-c", str(cfg), "--customers", "250"])
    assert result.exit_code == 0, result.output
    customers = pq.read_table(tmp_path / "data" / "customers.parquet").to_pandas()
    assert len(customers) == 250
    meta = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert meta["start_date"] == "2023-05-01" and meta["end_date"] == "2023-07-31"


def test_bad_override_is_a_config_error(tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "d"), "--customers", "3"])
    assert result.exit_code == 2
    assert "--customers 3: Input should be greater than or equal to 10" in result.output
    assert not (tmp_path / "d").exists()


def test_refuses_a_duckdb_file_as_output(tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x.duckdb"), "--customers", "50"])
    assert result.exit_code == 2
    assert "writes a folder of Parquet tables" in result.output
