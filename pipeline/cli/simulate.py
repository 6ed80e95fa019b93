"""Command: `churn simulate` (a simulated subscription company, in the input data contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from churn_pipeline.cli._common import (
    ConfigOpt,
    check_output_dir,
    console,
    load,
    print_after_publish,
    reported_errors,
)
from churn_pipeline.core.config import SimulationConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import DUCKDB_SUFFIXES

app = typer.Typer()

DataOutOpt = Annotated[
    Path | None, typer.Option("--out", help="Folder the tables are written to (default: data.source).")
]
TruthOpt = Annotated[
    Path | None,
    typer.Option("--truth", help="Folder for the ground truth (default: data.oracle, else <out>_truth)."),
]
CustomersOpt = Annotated[int | None, typer.Option("--customers", help="Override simulation.customers.")]
MonthsOpt = Annotated[int | None, typer.Option("--months", help="Override simulation.months.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Override simulation.seed.")]


def _with_overrides(sim: SimulationConfig, **overrides: int | None) -> SimulationConfig:
    update = {k: v for k, v in overrides.items() if v is not None}
    try:
        return SimulationConfig.model_validate({**sim.model_dump(), **update})
    except ValidationError as e:
        bad = "; ".join(
            f"--{'.'.join(map(str, err['loc']))} {err['input']!r}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid simulation option: {bad}") from e


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError


@app.command("simulate")
def simulate(
    config: ConfigOpt = None,
    out: DataOutOpt = None,
    truth: TruthOpt = None,
    customers: CustomersOpt = None,
    months: MonthsOpt = None,
    seed: SeedOpt = None,
) -> None:
    """Simulate a subscription company (customers, events, support contacts, surveys, payments) as Parquet
    tables in the input data contract, plus its ground truth (churn hazards) in a separate folder."""
    with reported_errors():
        from churn_pipeline.simulator.company import simulate_company

        cfg = load(config, writes_workdir=False)
        sim = _with_overrides(cfg.simulation, customers=customers, months=months, seed=seed)
        if out is None and cfg.data.source_url is not None:
            raise ConfigError(
                f"churn simulate writes a local folder of Parquet tables, and data.source is not one "
                f"({cfg.data.source_label}); pass --out FOLDER"
            )
        out_dir = out or Path(cfg.data.source)
        if out_dir.suffix.lower() in DUCKDB_SUFFIXES:
            raise ConfigError(
                f"churn simulate writes a folder of Parquet tables, not a DuckDB file ({out_dir}); "
                f"pass --out FOLDER or set data.source to a folder"
            )
        truth_dir = truth or cfg.data.oracle or out_dir.with_name(f"{out_dir.name}_truth")
        check_output_dir(out_dir, "--out" if out is not None else "data.source")
        check_output_dir(
            truth_dir, "--truth" if truth else "data.oracle" if cfg.data.oracle else "the truth folder"
        )
        summary = simulate_company(sim, out_dir, truth_dir, progress=True)
    print_after_publish(f"the simulated company ({summary.out_dir})", _print_summary, summary)


def _print_summary(summary) -> None:
    table = Table(title=f"simulated company -> {summary.out_dir}", title_justify="left")
    for col, justify in (("table", "left"), ("rows", "right"), ("size", "right")):
        table.add_column(col, justify=justify)
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}", _size(summary.bytes[name]))
    table.add_row("ground truth", "", _size(summary.truth_bytes), style="dim")
    console.print(table)
    lo, hi = summary.target_monthly_churn
    console.print(
        f"{summary.customers:,} customers, {summary.start_date} .. {summary.end_date}; "
        f"monthly churn rate [bold]{summary.monthly_churn_rate:.2%}[/] (target {lo:.1%}-{hi:.1%}); "
        f"{summary.seconds:.1f} s\nground truth (never an input): {summary.truth_dir}"
    )
