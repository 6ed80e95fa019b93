"""Options every command shares, and the one place known errors become messages and exit codes."""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from churn_pipeline.core.config import Config, load_config
from churn_pipeline.core.errors import ChurnError, ConfigError


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
    str | None,
    typer.Option(
        "--data",
        help="Data source: folder of Parquet/CSV tables, a DuckDB file, or a postgresql:// URL (password in "
        "PGPASSWORD, not on the command line).",
    ),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="As-of date YYYY-MM-DD (default: the last date in the data).")
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="Engine that reads the data and computes features: duckdb or spark (overrides data.engine).",
        show_default=False,
    ),
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


def load(
    config: Path | None,
    data: str | None = None,
    out: Path | None = None,
    *,
    engine: str | None = None,
    writes_workdir: bool = True,
) -> Config:
    """Load the config and apply the common overrides (`--data`, `--out`, `--engine`); a command that writes
    into the working directory (every command taking `--out`) has it checked first, so a bad one fails before
    any work."""
    cfg = load_config(config).with_overrides(data=data, out=out, engine=engine)
    if writes_workdir:
        check_output_dir(cfg.workdir, "--out" if out is not None else "workdir")
    return cfg


def check_output_dir(path: Path, origin: str) -> None:
    """Raise ConfigError unless `path` is a directory we can write in, or one we can create.

    The check writes (and removes) a probe file in the nearest existing directory, so a read-only file
    system or missing permissions are caught as they are, for root too.
    """
    path = Path(path)
    fix = f"pass {origin} a directory you can write to (it is created if missing)"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{origin} {path} is a file, not a directory: {fix}, or move the file away")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{origin} {path} cannot be created: {existing} is a file, not a directory; {fix}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".churn-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        where = "" if existing == path else f" (its nearest existing parent {existing})"
        raise ConfigError(f"{origin} {path} is not writable{where}: {e.strerror or e}; {fix}") from e


def print_after_publish(what: str, printer: Callable[..., None], *args: object) -> None:
    """Print a summary of outputs already published: a failure here is a warning, never a failed run.

    A scheduler reads the exit code: once the outputs are out, exit 1 would report a failure that did
    not happen (and invite a rerun that publishes them again).
    """
    try:
        printer(*args)
    except Exception as e:  # any display failure: the outputs are already published
        logging.getLogger("churn_pipeline.cli").warning(
            "%s are published, but printing their summary failed (%s: %s); the run succeeded",
            what,
            type(e).__name__,
            e,
            exc_info=logging.getLogger().isEnabledFor(logging.DEBUG),
        )


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
