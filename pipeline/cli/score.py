"""Commands: (being written)."""

import typer

app = typer.Typer()
