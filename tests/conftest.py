"""Shared fixtures: a small simulated company for stage-level tests and one model trained on it, whose tests
`pytest -n 2 --dist loadgroup` (`make test`) keeps on one worker."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from churn_pipeline.core.config import Config, LabelConfig, ScoringConfig, SimulationConfig, SnapshotConfig
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


def _postgres_bindir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_dsn():
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port, for the session (each xdist worker starts
    its own); its DSN. Tests keep apart by table or schema names. Skipped without the server binaries
    (failed in CI)."""
    bindir = _postgres_bindir()
    if bindir is None:
        message = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql (as .ci/run does)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # The server refuses to run as root: run it as `postgres`, in a dir it owns (outside root's 0700 tmp dirs).
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="churn-pg-"))
    data, sock, logfile = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    user = "postgres" if as_root else os.environ.get("USER", "postgres")
    run = lambda *args: subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "--no-sync", "-E", "UTF8")
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(
            str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(logfile), "-w", "-t", "60", "start"
        )
    except subprocess.CalledProcessError as e:
        log = logfile.read_text() if logfile.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {e.stderr}\n{log}")
    try:
        yield f"host=127.0.0.1 port={port} dbname=postgres user={user}"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


# The files whose tests use `trained`: under `make test` (`-n 2 --dist loadgroup`) they run on one worker, so
# the company is trained once; the Spark tests run on one worker too, so one local JVM starts (tests/spark shares
# one session); every other test goes to whichever worker is free.
TRAINED_FILES = frozenset(
    {
        "tests/pipeline/test_scoring.py",
        "tests/pipeline/test_hostile_cli.py",
        "tests/models/test_portable_model.py",
        "tests/pipeline/test_report.py",
        "tests/pipeline/test_report_browser.py",
    }
)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's loadgroup scheduling with the files of `trained` as one group and tests/spark as another. (xdist 3.8 groups by rewriting
    `item._nodeid`, which pytest 9 no longer reads, so `xdist_group` marks alone would not group anything.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneTraining(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            if path in TRAINED_FILES:
                return "trained"
            return "spark" if path.startswith("tests/spark/") else nodeid

    return OneTraining(config, log)
