"""Benchmark: simulate the 1M-customer x 24-month company from scratch (it becomes the cached company the
other benchmarks reuse). Prints time, rows, bytes and peak memory; writes bench/out/simulate.json."""

from __future__ import annotations

import resource
import time

from rich.console import Console
from rich.table import Table

from bench.common import OUT, company_dir, simulate_into
from churn_pipeline.data.io import atomic_write_json

CUSTOMERS, MONTHS, SEED = 1_000_000, 24, 7


def main() -> None:
    root = company_dir(CUSTOMERS, MONTHS, SEED)
    started = time.perf_counter()
    summary = simulate_into(root, CUSTOMERS, MONTHS, SEED)
    seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    table = Table(title=f"simulate {CUSTOMERS:,} customers x {MONTHS} months", title_justify="left")
    for col in ("table", "rows", "MB"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}", f"{summary.bytes[name] / 2**20:,.1f}")
    table.add_row(
        "total data", f"{sum(summary.rows.values()):,}", f"{sum(summary.bytes.values()) / 2**20:,.1f}"
    )
    table.add_row("ground truth", "", f"{summary.truth_bytes / 2**20:,.1f}")
    Console().print(table)
    Console().print(
        f"{seconds:.1f} s wall, peak RSS {peak_rss_mb:,.0f} MB, monthly churn {summary.monthly_churn_rate:.2%}, "
        f"{summary.start_date} .. {summary.end_date} -> {root}"
    )
    atomic_write_json(
        {
            "customers": CUSTOMERS,
            "months": MONTHS,
            "seed": SEED,
            "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak_rss_mb, 1),
            "rows": summary.rows,
            "bytes": summary.bytes,
            "truth_bytes": summary.truth_bytes,
            "monthly_churn_rate": summary.monthly_churn_rate,
            "start_date": summary.start_date,
            "end_date": summary.end_date,
            "path": str(root),
        },
        OUT / "simulate.json",
    )


if __name__ == "__main__":
    main()
