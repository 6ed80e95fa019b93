"""Options every command shares, and the one place known errors become messages and exit codes."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.config import Config, load_config
from pipeline.errors import ChurnError, ConfigError


def _console(stderr: bool = False) -> Console:
    # Off a terminal (make, cron, CI logs) rich assumes 80 columns, too narrow for the at-risk table.
    c = Console(stderr=stderr)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c = Console(stderr=stderr, width=140)
    return c


console = _console()
err_console = _console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (default: built-in defaults).", show_default=False),
]
DataOpt = Annotated[
    Path | None, typer.Option("--data", help="Data source: folder of Parquet/CSV tables or a DuckDB file.")
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="As-of date YYYY-MM-DD (default: the last date in the data).")
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Working directory for outputs (overrides workdir).")
]


def parse_as_of(value: str | None) -> dt.date | None:
    """Parse `--as-of`; a malformed date is a ConfigError naming the value and the expected format."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise ConfigError(f"--as-of {value!r} is not a date: use YYYY-MM-DD, e.g. 2025-06-30") from e


def load(config: Path | None, data: Path | None = None, out: Path | None = None) -> Config:
    """Load the config and apply the common overrides."""
    return load_config(config).with_overrides(data=data, out=out)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn known errors into a red message and their exit code; anything else is a bug and keeps its traceback."""
    try:
        yield
    except ChurnError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=e.exit_code) from None


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
