"""Commands: `churn validate` (the data contract check on its own)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from churn_pipeline.cli._common import (
    ConfigOpt,
    DataOpt,
    EngineOpt,
    console,
    load,
    parse_as_of,
    reported_errors,
)
from churn_pipeline.data.io import open_source, utc_today

app = typer.Typer()

ValidateAsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="As-of date YYYY-MM-DD the data is for; when later than today, data may run up to it "
        "(a replayed or simulated period). Default: today.",
    ),
]


@app.command("validate")
def validate(
    config: ConfigOpt = None, data: DataOpt = None, engine: EngineOpt = None, as_of: ValidateAsOfOpt = None
) -> None:
    """Check a data source against the input data contract and print a summary (row counts, date ranges)."""
    with reported_errors():
        cfg = load(config, data, engine=engine, writes_workdir=False)
        io_log = logging.getLogger("churn_pipeline.data.io")
        level = io_log.level
        io_log.setLevel(
            logging.ERROR
        )  # the summary prints the warnings; the IO layer's log would repeat them
        try:
            source = open_source(cfg.data.source, cfg=cfg.data, today=utc_today(), as_of=parse_as_of(as_of))
        finally:
            io_log.setLevel(level)
        table = Table(title=f"data source {cfg.data.source_label}: valid", title_justify="left")
        for col in ("table", "rows", "first", "last", "columns"):
            table.add_column(col, justify="right" if col == "rows" else "left")
        for name, rep in source.report.tables.items():
            table.add_row(name, f"{rep.rows:,}", rep.first or "", rep.last or "", str(len(rep.columns)))
        console.print(table)
        console.print(
            f"last date in the data: [bold]{source.data_end_date}[/]   fingerprint: {source.fingerprint}"
        )
        missing = [
            n for n in ("events", "support_contacts", "surveys", "payments") if n not in source.report.tables
        ]
        if missing:
            console.print(
                f"optional tables absent (their feature families are skipped): {', '.join(missing)}"
            )
        for warning in source.report.warnings:
            console.print(f"[bold yellow]warning:[/] {escape(warning)}", soft_wrap=True)
