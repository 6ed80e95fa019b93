"""Benchmark: nightly scoring of ~1M ACTIVE simulated customers, end to end (target < 30 s, < 4 GB).

The scored company is simulated big enough that about a million customers are active at its last date
(active share ~55% after 24 months of churn). The model comes from a smaller company of the same simulator
(training is not timed). The timed part runs in a fresh process so its peak memory is scoring's alone:
open + validate the source, staleness check, load the model, features as of the data end, drift check,
predict, contributions + reasons for the at-risk list, output checks, atomic write of the outputs.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import OUT, benchmark_config, ensure_company, proc_status_kb, write_figures
from churn_pipeline.core.config import Config

SCORED_CUSTOMERS = 1_820_000  # -> about 1.0M active at the data end
TRAIN_CUSTOMERS = 50_000
MONTHS = 24
TARGET_SECONDS = 30.0
TARGET_PEAK_GB = 4.0
WORKDIR = OUT / "score-work"


def train_champion(console: Console, workdir: Path = WORKDIR) -> Config:
    """Train and register the benchmark model in `workdir`'s registry (on TRAIN_CUSTOMERS; not timed)."""
    from churn_pipeline.stages.train import run_training

    data, truth = ensure_company(TRAIN_CUSTOMERS, MONTHS)
    cfg = benchmark_config(workdir, data, truth, snapshots=6)
    console.print(f"training the benchmark model on {TRAIN_CUSTOMERS:,} customers (not timed)...")
    started = time.perf_counter()
    result = run_training(cfg, progress=True)
    console.print(
        f"trained {result.model_name} v{result.model_version} in {time.perf_counter() - started:.0f} s "
        f"({result.decision.reason})"
    )
    return cfg


def _score_child(cfg_json: str, queue: mp.Queue) -> None:
    """Runs in a fresh process: the timed scoring run and this process's peak RSS."""
    from churn_pipeline.stages.score import run_scoring

    # python-mode validation of the JSON values: JSON-mode validation rejects data.source, whose before-validator
    # turns the text into a Path (or a SecretStr) first
    cfg = Config.model_validate(json.loads(cfg_json))
    started = time.perf_counter()
    result = run_scoring(cfg)
    seconds = time.perf_counter() - started
    peak_kb = proc_status_kb("self", "VmHWM") or 0
    queue.put(
        {
            "seconds": seconds,
            "peak_rss_gb": peak_kb / 1024**2,
            "as_of": result.as_of.isoformat(),
            "model_version": result.model_version,
            "active_scored": result.manifest.counts.active_scored,
            "at_risk": result.manifest.counts.at_risk,
            "list_size_pct": result.manifest.list_size.pct,
            "drift_status": result.manifest.checks.drift.status,
            "drift_warnings": result.drift_warnings,
            "steps_seconds": result.timings,
            "out_dir": str(result.out_dir),
        }
    )


def main() -> None:
    console = Console()
    # A fresh registry every run: an older champion must not win the gate and be what gets timed.
    shutil.rmtree(WORKDIR, ignore_errors=True)
    train_cfg = train_champion(console)
    data, _ = ensure_company(SCORED_CUSTOMERS, MONTHS)
    cfg = train_cfg.model_copy(
        update={"data": train_cfg.data.model_copy(update={"source": data, "oracle": None})}
    )

    console.print(f"scoring {data} in a fresh process (timed)...")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_score_child, args=(cfg.model_dump_json(), queue))
    proc.start()
    figures = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"scoring process failed with exit code {proc.exitcode}")

    figures.update(
        {
            "company": str(data.parent),
            "customers_in_company": SCORED_CUSTOMERS,
            "customers_per_second": figures["active_scored"] / figures["seconds"],
        }
    )
    write_figures("score", figures, TARGET_SECONDS, TARGET_PEAK_GB)

    table = Table(
        title=f"bench score: {figures['active_scored']:,} active customers as of {figures['as_of']}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("end-to-end seconds", f"{figures['seconds']:.1f}", f"< {TARGET_SECONDS:g}")
    table.add_row("peak memory (GB, RSS)", f"{figures['peak_rss_gb']:.2f}", f"< {TARGET_PEAK_GB:g}")
    table.add_row("customers / second", f"{figures['customers_per_second']:,.0f}", "")
    table.add_row("at-risk list", f"{figures['at_risk']:,} (top {figures['list_size_pct']:.3g}%)", "")
    table.add_row("drift check", figures["drift_status"], "")
    for step, secs in figures["steps_seconds"].items():
        table.add_row(f"  {step}", f"{secs:.2f} s", "")
    console.print(table)
    console.print(f"figures written to {OUT / 'score.json'}")


if __name__ == "__main__":
    main()
