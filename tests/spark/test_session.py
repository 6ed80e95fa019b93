"""Which SparkSession the Spark engine uses: under spark-submit, the master and settings spark-submit was given
(the local defaults must not override a cluster's), and `deploy/spark/churn_submit.py` runs `churn` there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _spark_submit() -> str:
    pyspark = pytest.importorskip("pyspark", reason="the spark extra is not installed")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime for Spark")
    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def test_under_spark_submit_the_session_keeps_its_master_and_settings(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from churn_pipeline.data.spark import spark_session\n"
        "s = spark_session()\n"
        "print('SESSION', s.sparkContext.master, s.conf.get('spark.sql.shuffle.partitions'),"
        " s.conf.get('spark.sql.session.timeZone'))\n"
        "s.stop()\n"
    )
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    out = subprocess.run(
        [_spark_submit(), "--master", "local[1]", "--conf", "spark.sql.shuffle.partitions=7", str(probe)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SESSION local[1] 7 UTC" in out.stdout


def test_churn_submit_runs_the_churn_command_under_spark_submit() -> None:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    out = subprocess.run(
        [
            _spark_submit(),
            "--master",
            "local[1]",
            str(ROOT / "deploy" / "spark" / "churn_submit.py"),
            "--help",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Usage: churn" in out.stdout and "score" in out.stdout


def test_a_local_session_gets_a_driver_heap_sized_to_the_machine(spark) -> None:
    from churn_pipeline.data.spark import LOCAL_DRIVER_MEMORY_MB

    if "PYSPARK_GATEWAY_PORT" in os.environ or "driver-memory" in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        pytest.skip("the session was configured by spark-submit or PYSPARK_SUBMIT_ARGS")
    assert 1024 <= LOCAL_DRIVER_MEMORY_MB <= 4096
    assert spark.sparkContext.getConf().get("spark.driver.memory") == f"{LOCAL_DRIVER_MEMORY_MB}m"
    # the JVM really got it: its max heap is near the setting (the JVM reserves a little of it)
    max_heap_mb = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory() / 2**20
    assert 0.8 * LOCAL_DRIVER_MEMORY_MB <= max_heap_mb <= LOCAL_DRIVER_MEMORY_MB
