"""One local SparkSession for the whole test session (starting one takes tens of seconds), and a small company."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from churn_pipeline.core.config import Config, SimulationConfig
from churn_pipeline.data.spark import spark_session


@pytest.fixture(scope="session")
def spark():
    """The local SparkSession every Spark test shares: `data.spark.spark_session()` finds it as the active one."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed: pip install -e '.[dev,spark]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime for Spark (Debian: apt-get install openjdk-17-jre-headless)")
    # py4j logs "Closing down clientserver connection" from __del__ at interpreter exit, after pytest closed
    # the stream its log capture wrote to: a "--- Logging error ---" traceback in every run otherwise
    logging.getLogger("py4j").setLevel(logging.WARNING)
    session = spark_session()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def small_company(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """500 simulated customers over 12 months as Parquet files, with a config reading them (frequency on)."""
    from churn_pipeline.simulator.company import simulate_company

    root: Path = tmp_path_factory.mktemp("spark_company")
    sim = SimulationConfig(customers=500, months=12, seed=11)
    simulate_company(sim, root / "data", root / "truth")
    return Config(
        workdir=root / "work",
        simulation=sim,
        data={"source": root / "data"},
        features={
            "important_event_types": ["login", "purchase"],
            "event_types": ["login", "purchase", "error"],
            "frequency": True,
        },
    )
