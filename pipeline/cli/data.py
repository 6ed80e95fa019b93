"""Commands: `churn validate` (the data contract check on its own)."""

from __future__ import annotations

import typer
from rich.table import Table

from pipeline.cli._common import ConfigOpt, DataOpt, console, load, reported_errors
from pipeline.io import open_source

app = typer.Typer()


@app.command("validate")
def validate(config: ConfigOpt = None, data: DataOpt = None) -> None:
    """Check a data source against the input data contract and print a summary (row counts, date ranges)."""
    with reported_errors():
        cfg = load(config, data, writes_workdir=False)
        source = open_source(cfg.data.source)
        table = Table(title=f"data source {cfg.data.source}: valid", title_justify="left")
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
