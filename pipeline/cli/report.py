"""Command: `churn report` (one self-contained HTML page: KPIs, the at-risk list, model quality, drift,
campaigns)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from churn_pipeline.cli._common import (
    AsOfOpt,
    ConfigOpt,
    DataOpt,
    OutOpt,
    console,
    load,
    parse_as_of,
    print_after_publish,
    reported_errors,
)

if TYPE_CHECKING:
    from churn_pipeline.stages.report import ReportResult

app = typer.Typer()


@app.command("report")
def report(config: ConfigOpt = None, data: DataOpt = None, as_of: AsOfOpt = None, out: OutOpt = None) -> None:
    """Write one self-contained HTML report (opens offline) of the at-risk list scored as of --as-of (default:
    the latest): KPI trends, the list by tier, reason family and action, the model's out-of-time lift, gains
    and calibration, drift, and campaign results when the data has campaigns."""
    with reported_errors():
        from churn_pipeline.stages.report import run_report

        cfg = load(config, data, out)
        result = run_report(cfg, parse_as_of(as_of), progress=True)
    print_after_publish(f"the report ({result.path})", _print_report, result)


def _print_report(result: ReportResult) -> None:
    table = Table(title=f"Report of the at-risk list scored as of {result.as_of}", title_justify="left")
    table.add_column("section")
    table.add_column("content")
    for s in result.sections:
        table.add_row(s.title, "[green]filled[/]" if s.filled else f"[yellow]note:[/] {escape(s.note)}")
    console.print(table)
    console.print(
        f"Written [bold]{result.path}[/] ({result.size_bytes / 1e6:.2f} MB, {result.charts} charts, no external "
        f"files: open it in any browser, offline) in {sum(result.timings.values()):.1f} s",
        soft_wrap=True,
    )
