"""Same definitions, same numbers: the labels and the rolling training set built on Spark equal DuckDB's (exact
for counts, dates and labels, 1e-9 relative for floats), BG/NBD columns included."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churn_pipeline.core.config import Config
from churn_pipeline.data.io import open_source
from churn_pipeline.features.labels import churn_labels
from churn_pipeline.stages.training_set import load_or_build_training_set
from tests.spark.test_parity import _differences

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _config(small_company: Config, workdir: Path, engine: str) -> Config:
    cfg = Config.model_validate(
        {**small_company.model_dump(), "workdir": workdir, "snapshots": {"count": 3, "spacing_days": 30}}
    )
    return cfg.with_overrides(engine=engine)


def test_labels_and_training_set_on_spark_equal_duckdb(spark, small_company: Config, tmp_path: Path) -> None:
    duck_cfg, spark_cfg = (_config(small_company, tmp_path / e, e) for e in ("duckdb", "spark"))
    duck_source = open_source(duck_cfg.data.source, cfg=duck_cfg.data)
    spark_source = open_source(spark_cfg.data.source, cfg=spark_cfg.data)
    assert spark_source.engine == "spark"

    as_of = duck_source.data_end_date - pd.Timedelta(days=45)
    labels = [
        churn_labels(s.tables, as_of, duck_cfg.label).execute().sort_values("customer_id", ignore_index=True)
        for s in (duck_source, spark_source)
    ]
    assert len(labels[0]) > 200 and labels[0]["label"].sum() > 0
    pd.testing.assert_frame_equal(labels[1], labels[0], check_dtype=False)

    duck = load_or_build_training_set(duck_cfg, source=duck_source, progress=False)
    on_spark = load_or_build_training_set(spark_cfg, source=spark_source, progress=False)
    assert duck.manifest.snapshots == on_spark.manifest.snapshots and len(duck.manifest.snapshots) == 3
    assert duck.manifest.fingerprint == on_spark.manifest.fingerprint  # same data, same definitions
    expected, built = duck.read(), on_spark.read()
    assert {"btyd_p_alive", "visit_days", "label", "snapshot_date"} <= set(expected.columns)
    assert list(built.columns) == list(expected.columns) and list(built.dtypes) == list(expected.dtypes)
    assert _differences(expected, built) == []
