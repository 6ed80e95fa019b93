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


def features_on_both_engines(
    folder: Path, spark_data: str, tmp_path: Path, as_of: str = "2024-11-30"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`churn features` of the local `folder` on DuckDB, and of `spark_data` (the same folder, or its URL) with
    `--engine spark`: (DuckDB's table, Spark's table), both commands having succeeded."""
    common = ["features", "--as-of", as_of]
    duck = runner.invoke(app, [*common, "--data", str(folder), "--out", str(tmp_path / "duck")])
    on_spark = runner.invoke(
        app, [*common, "--data", spark_data, "--engine", "spark", "--out", str(tmp_path / "spark")]
    )
    assert duck.exit_code == 0, duck.output
    assert on_spark.exit_code == 0, on_spark.output
    name = f"features/as_of={as_of}.parquet"
    return pd.read_parquet(tmp_path / "duck" / name), pd.read_parquet(tmp_path / "spark" / name)


def test_features_with_engine_spark_writes_the_duckdb_table(
    spark, small_company: Config, tmp_path: Path
) -> None:
    folder = Path(small_company.data.source)
    expected, written = features_on_both_engines(folder, str(folder), tmp_path)
    assert len(expected) > 200 and expected.shape[1] > 30
    assert list(written.columns) == list(expected.columns)
    assert list(written.dtypes) == list(expected.dtypes)
    assert _differences(expected, written) == []
