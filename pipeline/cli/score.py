"""Command: `churn score` (the nightly at-risk list; `churn export` delivers it, see cli/export.py)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    import pandas as pd

    from churn_pipeline.stages.score import ScoringResult

app = typer.Typer()

ModelVersionOpt = Annotated[
    str | None,
    typer.Option("--model-version", help="Registry version to score with (default: the champion)."),
]
TopOpt = Annotated[int, typer.Option("--top", min=0, help="Rows of the at-risk list to show.")]


@app.command("score")
def score(
    config: ConfigOpt = None,
    data: DataOpt = None,
    engine: EngineOpt = None,
    as_of: AsOfOpt = None,
    out: OutOpt = None,
    model_version: ModelVersionOpt = None,
    top: TopOpt = 15,
) -> None:
    """Score active customers as of a date into the full scores table and the at-risk list (all or nothing)."""
    with reported_errors():
        # imported here: the stage pulls in MLflow, which every other command would pay for at startup
        # (importing the stage after the CLI: +9.4/11.1/12.1 s min/median/max, 3 runs on a loaded 2-core box)
        from churn_pipeline.stages.score import run_scoring

        cfg = load(config, data, out, engine=engine)
        result = run_scoring(cfg, parse_as_of(as_of), model_version, progress=True)
    print_after_publish(
        f"the at-risk list and scores as of {result.as_of} ({result.out_dir})", _print_scoring, result, top
    )


def _print_scoring(result: ScoringResult, top: int) -> None:
    """The head of the at-risk list (`top` rows), then what the manifest records: counts, freshness, drift."""
    head = result.at_risk.head(top)  # an empty head (--top 0, an empty list) prints no table
    if len(head):
        console.print(_at_risk_table(head, result.as_of, len(result.at_risk)))
    m = result.manifest
    counts, size = m.counts, m.list_size
    tiers = ", ".join(f"{t}: {c}" for t, c in counts.by_tier.items())
    console.print(
        f"Scored [bold]{counts.active_scored:,}[/] active customers with {result.model_name} "
        f"v{result.model_version}; at-risk list [bold]{counts.at_risk:,}[/] "
        f"(top {size.pct:.3g}%, {size.origin}); tiers {tiers}; "
        f"expected value at risk {m.value.total_expected_value_at_risk:,.0f}"
    )
    if m.uplift_model is not None:
        console.print(
            f"Ranked by expected saved value (uplift x value) with {m.uplift_model.name} v{m.uplift_model.version}; "
            f"total expected saved value {result.at_risk['expected_saved_value'].sum():,.0f}"
        )
    if counts.control:
        console.print(
            f"Control group: [bold]{counts.control:,}[/] listed customers held out (group=control, "
            "scoring.control_pct of each tier): leave them out of the campaign to measure what it saves"
        )
    staleness = m.checks.staleness
    if staleness.status == "passed":
        console.print(
            f"Newest {staleness.table}: {staleness.newest_activity} ({staleness.age_days} days old)"
        )
    if result.drift_warnings:
        trending = m.checks.drift.trending
        listed = ", ".join(
            f"{k} ({v:.3f}{', trends with time: not gated' if k in trending else ''})"
            for k, v in result.drift_warnings.items()
        )
        console.print(
            f"[yellow]drift warning[/]: PSI above scoring.drift.warn_psi={m.checks.drift.warn_psi:g} in {listed}"
        )
    console.print(f"Outputs: {result.out_dir}")


def _at_risk_table(head: pd.DataFrame, as_of: dt.date, listed: int) -> Table:
    """The first rows of an at-risk list (of `listed` customers) as a table, reasons one per line; the uplift
    and saved value when the list is ranked by them."""
    table = Table(title=f"At-risk customers as of {as_of} (top {len(head)} of {listed})")
    by_saved_value = head["expected_saved_value"].notna().any()
    columns = [("#", {"justify": "right"}), ("customer", {}), ("probability", {"justify": "right"}),
               ("tier", {}), ("group", {}), ("value at risk", {"justify": "right"})]  # fmt: skip
    if by_saved_value:
        columns += [("uplift", {"justify": "right"}), ("saved value", {"justify": "right"})]
    for col, kw in (*columns, ("reasons", {"overflow": "fold"}), ("suggested action", {})):
        table.add_column(col, **kw)
    reasons = [
        "\n".join(x for x in r if x)
        for r in head[["reason_1", "reason_2", "reason_3"]].itertuples(index=False)
    ]
    for row, why in zip(head.itertuples(index=False), reasons, strict=True):
        table.add_row(
            str(row.rank),
            str(row.customer_id),
            f"{row.churn_probability:.1%}",
            str(row.risk_tier or "-"),
            str(row.group),
            f"{row.expected_value_at_risk:,.0f}",
            *((f"{row.uplift:+.1%}", f"{row.expected_saved_value:,.0f}") if by_saved_value else ()),
            why or "-",
            str(row.suggested_action),
        )
    return table
