"""Shared benchmark inputs: the cached simulated company the benchmarks run on."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import SimulationConfig
from pipeline.io import atomic_directory

OUT = Path(__file__).resolve().parent / "out"


def company_dir(customers: int = 1_000_000, months: int = 24, seed: int = 7) -> Path:
    """Where the benchmark company of this size lives (`bench/out/company-<customers>-<months>m/`)."""
    name = f"company-{customers}-{months}m" + ("" if seed == 7 else f"-seed{seed}")
    return OUT / name


def simulate_into(root: Path, customers: int, months: int, seed: int, *, progress: bool = True):
    """Simulate into `root/data` and `root/truth`; `root` appears whole at the end (other benchmarks may be
    waiting for it to exist)."""
    from simulator.company import simulate_company

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
