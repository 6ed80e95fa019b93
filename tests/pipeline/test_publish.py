"""Publishing a scoring run: a scores writer (how Spark publishes a folder of parts) lands atomically with the
other outputs, and the manifest's checksum of a folder covers its data parts only."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from churn_pipeline.core.artifacts import AT_RISK_FILE, MANIFEST_FILE, SCORES_FILE
from churn_pipeline.data.io import file_sha256, output_sha256
from churn_pipeline.stages.publish import publish_outputs
from churn_pipeline.stages.score_manifest import (
    Checks,
    Counts,
    DataInfo,
    DriftCheck,
    ListSize,
    ModelInfo,
    ScoringManifest,
    StalenessCheck,
    ValidationCheck,
    ValueAtRisk,
)

AS_OF = dt.date(2025, 3, 31)


def _manifest() -> ScoringManifest:
    return ScoringManifest(
        as_of=AS_OF,
        model=ModelInfo("m", "1", "champion", None, None),
        data=DataInfo("data", "f" * 16, AS_OF),
        counts=Counts(4, 1, {"critical": 1}, 0.5),
        list_size=ListSize(25.0, 1, "scoring.list_size"),
        value=ValueAtRisk("evaluation.customer_value", 300.0),
        checks=Checks(
            ValidationCheck(AS_OF), StalenessCheck(status="skipped", reason="-"), DriftCheck("passed")
        ),
        engine="spark",
    )


def _parts(path: Path, frames: list[pd.DataFrame]) -> None:
    """A scores writer as Spark writes: numbered parts, a _SUCCESS marker and hidden .crc files."""
    path.mkdir()
    for i, frame in enumerate(frames):
        frame.to_parquet(path / f"part-{i:05d}-x.snappy.parquet", index=False)
        (path / f".part-{i:05d}-x.snappy.parquet.crc").write_bytes(b"crc")
    (path / "_SUCCESS").write_bytes(b"")


def test_output_sha256_of_a_folder_covers_its_parts_in_name_order_and_nothing_else(tmp_path: Path) -> None:
    a, b = pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [3]})
    _parts(tmp_path / "one", [a, b])
    _parts(tmp_path / "two", [a, b])
    (tmp_path / "two" / "_SUCCESS").write_bytes(b"written at another time")
    (tmp_path / "two" / ".part-00000-x.snappy.parquet.crc").write_bytes(b"other")
    assert output_sha256(tmp_path / "one") == output_sha256(tmp_path / "two")
    _parts(tmp_path / "swapped", [b, a])
    assert output_sha256(tmp_path / "swapped") != output_sha256(tmp_path / "one")
    a.to_parquet(tmp_path / "file.parquet", index=False)
    assert output_sha256(tmp_path / "file.parquet") == file_sha256(tmp_path / "file.parquet")


def test_a_scores_writer_is_published_with_the_list_and_manifest(tmp_path: Path) -> None:
    scores = pd.DataFrame({"customer_id": [3, 1, 2, 4], "churn_probability": [0.9, 0.5, 0.4, 0.1]})
    at_risk = scores.head(1)
    final = tmp_path / "scores" / f"as_of={AS_OF}"
    written = publish_outputs(
        final,
        lambda path: _parts(path, [scores.head(2), scores.tail(2)]),
        at_risk,
        _manifest(),
        {"predict": 1.0},
    )
    assert sorted(p.name for p in final.iterdir()) == sorted([AT_RISK_FILE, MANIFEST_FILE, SCORES_FILE])
    pd.testing.assert_frame_equal(pd.read_parquet(final / SCORES_FILE), scores)
    on_disk = json.loads((final / MANIFEST_FILE).read_text())
    assert on_disk["engine"] == "spark" and on_disk == written.to_dict()
    assert on_disk["files"][SCORES_FILE] == output_sha256(final / SCORES_FILE)
    assert on_disk["files"][AT_RISK_FILE] == file_sha256(final / AT_RISK_FILE)


def test_a_failing_scores_writer_publishes_nothing_and_keeps_the_previous_run(tmp_path: Path) -> None:
    final = tmp_path / "scores" / f"as_of={AS_OF}"
    frame = pd.DataFrame({"customer_id": [1], "churn_probability": [0.5]})
    publish_outputs(final, frame, frame, _manifest(), {})
    before = {p.name: p.read_bytes() for p in final.iterdir()}

    def broken(path: Path) -> None:
        _parts(path, [frame])
        raise OSError("executor lost")

    with pytest.raises(OSError, match="executor lost"):
        publish_outputs(final, broken, frame, _manifest(), {})
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # no temp folder left


def test_scoring_imports_without_pyspark() -> None:
    """pyspark is the optional `spark` extra: scoring and the CLI import without it, and asking for the spark
    engine then says how to install it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['pyspark'] = None  # any `import pyspark...` now raises ImportError\n"
        "import churn_pipeline.cli, churn_pipeline.stages.score, churn_pipeline.stages.score_spark\n"
        "from churn_pipeline.data.spark import spark_session\n"
        "from churn_pipeline.core.errors import ConfigError\n"
        "try:\n"
        "    spark_session()\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'churn-pipeline[spark]'" in done.stdout
