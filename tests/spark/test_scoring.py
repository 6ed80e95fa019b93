"""Scoring on Spark publishes what DuckDB scoring publishes for the same champion and data: the same scores
(1e-9), ranks, at-risk list (tiers, control group, reasons, values) and manifest, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.artifacts import AT_RISK_FILE, MANIFEST_FILE, SCORES_FILE
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import DriftError
from churn_pipeline.data.io import output_sha256
from churn_pipeline.stages.score import run_scoring

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# The runs' own records, expected to differ between engines; everything else in the manifests must not.
_RUN_RECORDS = {"engine", "files", "timings_seconds"}


@pytest.fixture(scope="module")
def champion(small_company: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A LightGBM champion trained (on DuckDB) on the small company; control group and a value column on."""
    from churn_pipeline.stages.train import run_training

    cfg = Config.model_validate(
        {
            **small_company.model_dump(),
            "workdir": tmp_path_factory.mktemp("spark-champion"),
            "snapshots": {"count": 4, "spacing_days": 14},
            "model": {"candidates": ["lightgbm"], "tuning": {"trials": 0}},
            "scoring": {"value_column": "monthly_fee", "control_pct": 20, "list_size": 30},
        }
    )
    run_training(cfg)
    return cfg


def _elsewhere(cfg: Config, workdir: Path, engine: str, **scoring: object) -> Config:
    """`cfg` writing into `workdir` on `engine`, with the champion's registry."""
    out = cfg.with_overrides(out=workdir, engine=engine)
    update: dict = {"tracking": out.tracking.model_copy(update={"uri": cfg.tracking_uri})}
    if scoring:
        update["scoring"] = Config.model_validate(
            {"scoring": {**cfg.scoring.model_dump(), **scoring}}
        ).scoring
    return out.model_copy(update=update)


@pytest.fixture
def unmerged_partitions(spark):
    """Keep Spark's shuffle partitions apart (adaptive execution merges small ones), so the ranking spans
    several partitions, as on real data."""
    key = "spark.sql.adaptive.coalescePartitions.enabled"
    before = spark.conf.get(key)
    spark.conf.set(key, "false")
    yield
    spark.conf.set(key, before)


def test_spark_scoring_publishes_what_duckdb_scoring_publishes(
    spark, unmerged_partitions, champion: Config, tmp_path: Path
) -> None:
    duck = run_scoring(_elsewhere(champion, tmp_path / "duck", "duckdb"))
    on_spark = run_scoring(_elsewhere(champion, tmp_path / "spark", "spark"))

    assert (
        on_spark.scores is None and on_spark.manifest.engine == "spark" and duck.manifest.engine == "duckdb"
    )
    folder = on_spark.out_dir / SCORES_FILE
    parts = sorted(folder.glob("*.parquet"))
    assert folder.is_dir() and len(parts) >= 2, "the ranking must span several partitions"
    # in rank order across the parts, read back as one table
    scores = pq.read_table(folder).to_pandas().astype({"as_of": "date32[pyarrow]"})
    expected = pd.read_parquet(duck.out_dir / SCORES_FILE)
    assert len(scores) == len(expected) > 300
    pd.testing.assert_frame_equal(scores, expected, check_exact=False, rtol=1e-9, atol=0)
    assert scores["rank"].tolist() == list(range(1, len(scores) + 1))

    at_risk = pd.read_parquet(on_spark.out_dir / AT_RISK_FILE)
    pd.testing.assert_frame_equal(at_risk, pd.read_parquet(duck.out_dir / AT_RISK_FILE), rtol=1e-9, atol=0)
    assert at_risk["risk_tier"].nunique() == 3 and set(at_risk["group"]) == {"treatment", "control"}
    assert at_risk["reason_1"].notna().all()
    pd.testing.assert_frame_equal(on_spark.at_risk, duck.at_risk, rtol=1e-9, atol=0)

    published = json.loads((on_spark.out_dir / MANIFEST_FILE).read_text())
    assert published["engine"] == "spark"
    assert published["files"][SCORES_FILE] == output_sha256(folder)
    theirs = json.loads((duck.out_dir / MANIFEST_FILE).read_text())
    # a mean summed per partition: equal to rounding
    mean = published["counts"].pop("mean_probability_scored")
    assert mean == pytest.approx(theirs["counts"].pop("mean_probability_scored"), rel=1e-9, abs=0)
    assert {k: v for k, v in published.items() if k not in _RUN_RECORDS} == {
        k: v for k, v in theirs.items() if k not in _RUN_RECORDS
    }
    assert published["checks"]["drift"]["psi"], "the drift check ran on both engines"

    # `churn export` reads a Spark run's outputs as it reads DuckDB's
    exported = CliRunner().invoke(app, ["export", "--out", str(tmp_path / "spark"), "--to", "csv"])
    assert exported.exit_code == 0, exported.output
    (csv,) = (tmp_path / "spark" / "exports").rglob("*.csv")
    assert pd.read_csv(csv)["customer_id"].tolist() == at_risk["customer_id"].tolist()


def test_a_failing_check_on_spark_publishes_nothing(spark, champion: Config, tmp_path: Path) -> None:
    cfg = _elsewhere(
        champion, tmp_path, "spark", drift={"warn_psi": 0.0, "fail_psi": 0.0, "trending": "fail"}
    )
    with pytest.raises(DriftError, match="Nothing was published"):
        run_scoring(cfg)
    scores_root = tmp_path / "scores"
    assert not scores_root.exists() or list(scores_root.iterdir()) == []
