"""Command: `churn export` (deliver a published at-risk list to one of the registered export targets)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from churn_pipeline.cli._common import (
    ConfigOpt,
    OutOpt,
    console,
    load,
    parse_as_of,
    print_after_publish,
    reported_errors,
)
from churn_pipeline.stages.export import TARGETS, ExportResult, IncompleteExport, listed, run_export

app = typer.Typer()

TargetOpt = Annotated[str, typer.Option("--to", help=f"Export target: {listed(TARGETS, ' or ')}.")]
ScoredAsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Scored date YYYY-MM-DD (default: the latest scored date).")
]
_TITLES = listed((t.title for t in TARGETS.values()), " or ")


@app.command(
    "export", help=f"Export a published at-risk list (default: the latest scored date) to {_TITLES}."
)
def export(
    config: ConfigOpt = None,
    as_of: ScoredAsOfOpt = None,
    out: OutOpt = None,
    to: TargetOpt = "csv",
) -> None:
    """Export a published at-risk list to the target named by `--to` (help text from the registry)."""
    with reported_errors():
        cfg = load(config, None, out)
        try:
            result = run_export(cfg, parse_as_of(as_of), to, progress=True)
        except IncompleteExport as e:
            # the error message carries the failure report; the exit code stays the export's
            print_after_publish("the partial export", _print_export, e.result, False)
            raise
    print_after_publish(f"the {result.target} export of {result.as_of}", _print_export, result)


def _print_export(result: ExportResult, summary: bool = True) -> None:
    table = Table(title=f"Export of the at-risk list as of {result.as_of} to {result.target}")
    for col in ("records", "delivered now", "already delivered", "not delivered", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result.records:,}",
        f"{result.delivered:,}",
        f"{result.skipped:,}",
        f"[red]{result.failed:,}[/]" if result.failed else "0",
        f"{result.seconds:.2f}",
    )
    console.print(table)
    console.print(f"Destination: {result.destination}", soft_wrap=True)
    if summary and result.summary:
        console.print(result.summary, highlight=False, soft_wrap=True)
