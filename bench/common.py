"""Shared benchmark inputs: the cached simulated company the benchmarks run on."""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
from pathlib import Path

from churn_pipeline.core.config import Config, LabelConfig, SimulationConfig, SnapshotConfig
from churn_pipeline.data.io import atomic_directory

OUT = Path(__file__).resolve().parent / "out"


def company_dir(customers: int = 1_000_000, months: int = 24, seed: int = 7) -> Path:
    """Where the benchmark company of this size lives (`bench/out/company-<customers>-<months>m/`)."""
    name = f"company-{customers}-{months}m" + ("" if seed == 7 else f"-seed{seed}")
    return OUT / name


def simulate_into(root: Path, customers: int, months: int, seed: int, *, progress: bool = True):
    """Simulate into `root/data` and `root/truth`; `root` appears whole at the end (other benchmarks may be
    waiting for it to exist)."""
    from churn_pipeline.simulator.company import simulate_company

    cfg = SimulationConfig(customers=customers, months=months, seed=seed)
    with atomic_directory(root) as tmp:
        summary = simulate_company(cfg, tmp / "data", tmp / "truth", progress=progress)
    return summary


def ensure_company(customers: int = 1_000_000, months: int = 24, seed: int = 7) -> tuple[Path, Path]:
    """(data_dir, truth_dir) of the benchmark company, simulating it only if it is not there yet."""
    root = company_dir(customers, months, seed)
    data, truth = root / "data", root / "truth"
    if not ((data / "customers.parquet").is_file() and (truth / "truth.json").is_file()):
        simulate_into(root, customers, months, seed)
    return data, truth


def proc_status_kb(pid: int | str, key: str) -> int | None:
    """A `/proc/<pid>/status` figure in kB (`VmHWM`: peak RSS, `VmRSS`: RSS now), or None when unreadable.

    A child's own peak is VmHWM, not `ru_maxrss`: Linux carries ru_maxrss across exec, so a child spawned by a
    parent that once held 10 GB (the pandas baseline of bench features) would report the parent's peak."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def write_figures(name: str, figures: dict, target_seconds: float, target_peak_gb: float) -> None:
    """Add the targets, the verdict and the machine to `figures` and write `bench/out/<name>.json`."""
    figures.update(
        {
            "target_seconds": target_seconds,
            "target_peak_rss_gb": target_peak_gb,
            "within_targets": figures["seconds"] < target_seconds and figures["peak_rss_gb"] < target_peak_gb,
            "cpus": mp.cpu_count(),
            "python": sys.version.split()[0],
        }
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def benchmark_config(workdir: Path, data: Path, truth: Path | None, snapshots: int) -> Config:
    """The config the score and train benchmarks run the simulated company with (cancellation, 30 days)."""
    return Config(
        workdir=workdir,
        data={"source": data, "oracle": truth},
        label=LabelConfig(kind="cancellation", horizon_days=30),
        snapshots=SnapshotConfig(count=snapshots, spacing_days=14),
        features={
            "important_event_types": ["login", "purchase"],
            "event_types": ["login", "purchase", "error"],
        },
    )
