"""`--engine spark` through the real CLI: `churn features` writes the table the default engine writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.config import Config
from tests.spark.test_parity import _differences

pytestmark = [pytest.mark.spark, pytest.mark.slow]

runner = CliRunner()


def test_features_with_engine_spark_writes_the_duckdb_table(
    spark, small_company: Config, tmp_path: Path
) -> None:
    common = ["features", "--data", str(small_company.data.source), "--as-of", "2024-11-30"]
    duck = runner.invoke(app, [*common, "--out", str(tmp_path / "duck")])
    on_spark = runner.invoke(app, [*common, "--out", str(tmp_path / "spark"), "--engine", "spark"])
    assert duck.exit_code == 0, duck.output
    assert on_spark.exit_code == 0, on_spark.output
    name = "features/as_of=2024-11-30.parquet"
    expected, written = pd.read_parquet(tmp_path / "duck" / name), pd.read_parquet(tmp_path / "spark" / name)
    assert len(expected) > 200 and expected.shape[1] > 30
    assert list(written.columns) == list(expected.columns)
    assert list(written.dtypes) == list(expected.dtypes)
    assert _differences(expected, written) == []
