"""Commands: `churn features` (one as-of feature table) and `churn build-training-set` (labelled snapshots)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from churn_pipeline.cli._common import (
    AsOfOpt,
    ConfigOpt,
    DataOpt,
    EngineOpt,
    OutOpt,
    console,
    load,
    parse_as_of,
    print_after_publish,
    reported_errors,
)
from churn_pipeline.features.catalog import family

# The stages are imported inside the commands: they load ibis, DuckDB and pyarrow, which `churn --help` and
# the other commands need not wait for.
if TYPE_CHECKING:
    from churn_pipeline.stages.training_set import FeatureTableResult, TrainingSet

app = typer.Typer()


@app.command("features")
def features(
    config: ConfigOpt = None,
    data: DataOpt = None,
    engine: EngineOpt = None,
    as_of: AsOfOpt = None,
    out: OutOpt = None,
) -> None:
    """Compute the point-in-time feature table of every active customer as of a date and write it as Parquet."""
    with reported_errors():
        from churn_pipeline.stages.training_set import write_feature_table

        cfg = load(config, data, out, engine=engine)
        when = parse_as_of(as_of)
        result = write_feature_table(cfg, when)
    print_after_publish(f"the feature table ({result.path})", _print_features, result)


def _print_features(result: FeatureTableResult) -> None:
    names = [c for c in result.frame.columns if c != "customer_id"]
    per_family = Counter(family(name) for name in names)  # first-seen order, as the columns come
    table = Table(title=f"features as of {result.as_of}", title_justify="left")
    table.add_column("family")
    table.add_column("features", justify="right")
    for fam, n in per_family.items():
        table.add_row(fam, str(n))
    table.add_section()
    table.add_row("[bold]total[/]", f"[bold]{len(names)}[/]")
    console.print(table)
    console.print(
        f"{len(result.frame):,} active customers x {len(names)} features "
        f"({len(result.categorical_features)} categorical) -> {result.path}",
        soft_wrap=True,
    )


@app.command("build-training-set")
def build_training_set(
    config: ConfigOpt = None, data: DataOpt = None, engine: EngineOpt = None, out: OutOpt = None
) -> None:
    """Build (or reuse) the labelled rolling-snapshot training set and print rows and churn rate per snapshot."""
    with reported_errors():
        from churn_pipeline.stages.training_set import load_or_build_training_set

        cfg = load(config, data, out, engine=engine)
        ts = load_or_build_training_set(cfg)
    print_after_publish(f"the training set ({ts.path})", _print_training_set, ts)


def _print_training_set(ts: TrainingSet) -> None:
    m = ts.manifest
    table = Table(
        title=f"training set ({m.label.kind}, horizon {m.label.horizon_days} days)",
        title_justify="left",
    )
    table.add_column("snapshot")
    table.add_column("rows", justify="right")
    table.add_column("churn rate", justify="right")
    for snap in m.snapshots:
        table.add_row(snap.date.isoformat(), f"{snap.rows:,}", f"{snap.churn_rate:.2%}")
    table.add_section()
    table.add_row("[bold]all[/]", f"[bold]{m.rows:,}[/]", f"[bold]{m.churn_rate:.2%}[/]")
    console.print(table)
    console.print(
        f"{len(m.features)} features ({len(m.categorical_features)} categorical), "
        f"fingerprint {m.fingerprint} -> {ts.path}",
        soft_wrap=True,
    )
