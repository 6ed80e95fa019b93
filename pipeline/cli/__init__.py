"""The `churn` command line: thin commands that parse options, load config, call one stage."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from churn_pipeline.cli import _common
from churn_pipeline.core.runtime import configure_process

app = typer.Typer(
    name="churn",
    help="churn-pipeline: point-in-time churn features, a tracked churn model, nightly at-risk lists.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def package_version() -> str:
    """The installed churn-pipeline version (from the package metadata, i.e. pyproject.toml)."""
    try:
        return version("churn-pipeline")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed: pip install -e .)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"churn-pipeline {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    _common.setup_logging(verbose)


from churn_pipeline.cli import campaigns, data, export, features, kpis, modelling, report, score, simulate  # noqa: E402  (each module owns its commands)

for _module in (simulate, data, features, modelling, score, export, kpis, campaigns, report):
    app.add_typer(_module.app)


def main() -> None:
    configure_process()  # before any command imports LightGBM or MLflow (the stages are imported lazily)
    app()
