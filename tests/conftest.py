"""Shared fixtures: a small simulated company for stage-level tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from churn_pipeline.core.config import Config, LabelConfig, SimulationConfig, SnapshotConfig
from churn_pipeline.core.runtime import configure_process

configure_process()  # the test session is an entry point: before any test imports LightGBM or MLflow


@dataclass(frozen=True)
class SimulatedCompany:
    data_dir: Path
    truth_dir: Path
    config: Config

    def config_in(self, workdir: Path, **sections: object) -> Config:
        """The company's config with a private working dir (tests must not share MLflow stores or outputs)."""
        return self.config.model_copy(update={"workdir": workdir, **sections})


@pytest.fixture(scope="session")
def company(tmp_path_factory: pytest.TempPathFactory) -> SimulatedCompany:
    """3,000 customers over 12 months (seed 11), with a config pointing at it and a private workdir."""
    from churn_pipeline.simulator.company import simulate_company

    root = tmp_path_factory.mktemp("company")
    sim = SimulationConfig(customers=3_000, months=12, seed=11)
    data_dir, truth_dir = root / "data", root / "truth"
    simulate_company(sim, data_dir, truth_dir)
    cfg = Config(
        workdir=root / "work",
        simulation=sim,
        data={"source": data_dir, "oracle": truth_dir},
        label=LabelConfig(kind="cancellation", horizon_days=30),
        snapshots=SnapshotConfig(count=4, spacing_days=14),
        features={
            "important_event_types": ["login", "purchase"],
            "event_types": ["login", "purchase", "error"],
        },
    )
    return SimulatedCompany(data_dir, truth_dir, cfg)
