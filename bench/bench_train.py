"""Benchmark: `churn train` on a simulated 1M-customer company, end to end (target < 5 minutes, < 8 GB).

The training set is built from scratch (8 snapshots every 14 days, cancellation label, 30-day horizon), then
split out of time, every candidate developed, the chosen one calibrated, refitted, evaluated, logged and
registered. It runs in a fresh process so its peak memory (VmHWM) is training's alone; the parent watches the
child's resident memory and stops it above `KILL_RSS_GB` (the machine is shared).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import time

from rich.console import Console
from rich.table import Table

from bench.common import OUT, benchmark_config, ensure_company, proc_status_kb, write_figures
from churn_pipeline.core.config import Config

CUSTOMERS = 1_000_000
MONTHS = 24
TARGET_SECONDS = 300.0
TARGET_PEAK_GB = 8.0
KILL_RSS_GB = 12.0
WORKDIR = OUT / "train-work"


def _train_child(cfg_json: str, queue: mp.Queue) -> None:
    """Runs in a fresh process: the timed training run and this process's peak RSS."""
    from churn_pipeline.simulator.oracle import oracle_for
    from churn_pipeline.stages.train import run_training
    from churn_pipeline.stages.training_set import MANIFEST_FILE, TrainingSetManifest, training_set_dir

    # python-mode validation of the JSON values: JSON-mode validation rejects data.source, whose before-validator
    # turns the text into a Path (or a SecretStr) first
    cfg = Config.model_validate(json.loads(cfg_json))
    started = time.perf_counter()
    result = run_training(cfg, progress=True, oracle=oracle_for(cfg))
    seconds = time.perf_counter() - started
    chosen = result.evaluation.metrics[result.chosen]
    queue.put(
        {
            "seconds": seconds,
            "peak_rss_gb": (proc_status_kb("self", "VmHWM") or 0) / 1024**2,
            "split_rows": result.split_sizes,
            "rows_in_training_set": TrainingSetManifest.read(
                training_set_dir(cfg, result.training_set_fingerprint) / MANIFEST_FILE
            ).rows,
            "strategy": result.strategy,
            "features": len(result.features),
            "chosen": result.chosen,
            "reason": result.reason,
            "test_roc_auc": chosen["roc_auc"],
            "test_pr_auc": chosen["pr_auc"],
            "test_ece": chosen.get("ece"),
            "test_rows": result.evaluation.rows,
            "notes": result.notes,
            "steps_seconds": result.timings,
        }
    )


def main() -> None:
    console = Console()
    data, _ = ensure_company(CUSTOMERS, MONTHS)
    # from scratch every run: the training-set build is part of what is timed
    shutil.rmtree(WORKDIR, ignore_errors=True)
    cfg = benchmark_config(WORKDIR, data, None, snapshots=8)
    console.print(f"training on {data} in a fresh process (timed)...")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_child, args=(cfg.model_dump_json(), queue))
    proc.start()
    watched_peak_kb = 0
    figures = None
    while figures is None:
        rss = proc_status_kb(proc.pid, "VmRSS")
        watched_peak_kb = max(watched_peak_kb, rss or 0)
        if rss is not None and rss > KILL_RSS_GB * 1024**2:
            proc.kill()
            proc.join()
            raise SystemExit(f"training used {rss / 1024**2:.1f} GB (> {KILL_RSS_GB:g} GB): stopped")
        try:
            figures = queue.get(timeout=1.0)
        except Exception:  # queue.Empty: still running
            if not proc.is_alive():
                raise SystemExit(f"training process failed with exit code {proc.exitcode}") from None
    proc.join()

    sizes = figures["split_rows"]
    figures.update(
        {
            "company": str(data.parent),
            "customers_in_company": CUSTOMERS,
        }
    )
    write_figures("train", figures, TARGET_SECONDS, TARGET_PEAK_GB)

    table = Table(title=f"bench train: {CUSTOMERS:,} customers, {figures['features']} features")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("end-to-end seconds", f"{figures['seconds']:.1f}", f"< {TARGET_SECONDS:g}")
    table.add_row("peak memory (GB, RSS)", f"{figures['peak_rss_gb']:.2f}", f"< {TARGET_PEAK_GB:g}")
    table.add_row(
        "rows: trained on / validation / test",
        f"{sizes['train']:,} / {sizes['valid']:,} / {sizes['test']:,}",
        "",
    )
    table.add_row("chosen candidate", figures["chosen"], "")
    table.add_row(
        "test ROC-AUC / PR-AUC", f"{figures['test_roc_auc']:.4f} / {figures['test_pr_auc']:.4f}", ""
    )
    for step, secs in figures["steps_seconds"].items():
        table.add_row(f"  {step}", f"{secs:.1f} s", "")
    console.print(table)
    console.print(figures["strategy"])
    console.print(f"figures written to {OUT / 'train.json'}")


if __name__ == "__main__":
    main()
