"""Shared fixtures: a small simulated company for stage-level tests and one model trained on it; the groups
that `pytest -n 2 --dist loadgroup` (`make test`) keeps on one worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from churn_pipeline.core.config import Config, LabelConfig, ScoringConfig, SimulationConfig, SnapshotConfig


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


@pytest.fixture(scope="session")
def trained(company, tmp_path_factory):
    """The shared company with a champion trained by `run_training` in a private working dir: (config, result).
    One training for every test that needs a real model (scoring, hostile CLI, portable model); tests that
    write outputs use their own workdir or `--out` with this registry pinned."""
    from churn_pipeline.stages.train import run_training

    workdir = tmp_path_factory.mktemp("scoring-work")
    cfg = company.config_in(workdir, scoring=ScoringConfig(value_column="monthly_fee", value_months=12))
    result = run_training(cfg)
    return cfg, result


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` a test file runs on one worker (its module-scoped fixtures are built once, as
    with `--dist loadfile`), and so do all the tests of the session-scoped `trained` model (one training)."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        group = "trained" if "trained" in getattr(item, "fixturenames", ()) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
