"""Command: `churn kpis` (retention and service KPIs per period and segment, written and printed)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from churn_pipeline.cli._common import (
    ConfigOpt,
    DataOpt,
    EngineOpt,
    OutOpt,
    console,
    load,
    print_after_publish,
    reported_errors,
)

if TYPE_CHECKING:
    from churn_pipeline.stages.kpis import KpiResult

app = typer.Typer()

SHOWN_PERIODS = 6
# (column, header, format) of the printed tables: p50/p90 = median/90th percentile, m = minutes, h = hours
_SHOWN = (
    ("customers_start", "start", "{:,.0f}"),
    ("new_customers", "new", "{:,.0f}"),
    ("lost_customers", "lost", "{:,.0f}"),
    ("churn_rate_pct", "churn%", "{:.2f}"),
    ("retention_rate_pct", "retain%", "{:.2f}"),
    ("revenue_churn_pct", "rev churn%", "{:.2f}"),
    ("first_response_median_minutes", "resp p50m", "{:,.0f}"),
    ("first_response_p90_minutes", "resp p90m", "{:,.0f}"),
    ("first_contact_resolution_pct", "FCR%", "{:.1f}"),
    ("complaints_per_100_customers", "compl/100", "{:.1f}"),
    ("complaint_resolution_median_hours", "compl p50h", "{:.1f}"),
    ("nps", "NPS", "{:.0f}"),
    ("nps_non_respondent_pct", "no NPS%", "{:.0f}"),
    ("clv", "CLV", "{:,.0f}"),
)


@app.command("kpis")
def kpis(
    config: ConfigOpt = None, data: DataOpt = None, engine: EngineOpt = None, out: OutOpt = None
) -> None:
    """Compute churn, retention, revenue churn, support, NPS and CLV KPIs per period and segment; write them as
    Parquet and CSV under the working directory and print the latest periods."""
    with reported_errors():
        from churn_pipeline.stages.kpis import write_kpis

        cfg = load(config, data, out, engine=engine)
        result = write_kpis(cfg)
    print_after_publish(f"the KPIs ({result.parquet_path})", _print_kpis, result)


def _cell(value: object, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    return fmt.format(value)


def _table(title: str, first_header: str, rows: list[tuple[str, pd.Series]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first_header, no_wrap=True)
    for _, header, _ in _SHOWN:
        table.add_column(header, justify="right")
    for label, row in rows:
        table.add_row(escape(label), *[_cell(row[c], fmt) for c, _, fmt in _SHOWN])
    return table


def _print_kpis(result: KpiResult) -> None:
    overall = result.overall().tail(SHOWN_PERIODS)
    console.print(
        _table(
            f"KPIs per {result.period}, all customers (latest {len(overall)}; the files hold every KPI)",
            result.period,
            [(str(r.period_start), r) for _, r in overall.iterrows()],
        )
    )
    latest = result.periods[-1].start
    by_segment = result.frame[(result.frame["period_start"] == latest) & (result.frame["segment"] != "all")]
    if not by_segment.empty:
        console.print(
            _table(
                f"by segment, {result.period} starting {latest}",
                "segment",
                [(f"{r.segment}={r.segment_value}", r) for _, r in by_segment.iterrows()],
            )
        )
    console.print(
        f"{len(result.periods)} {result.period}s to {result.periods[-1].end} (exclusive; data ends "
        f"{result.data_end_date}), {len(result.frame):,} rows; CLV from {result.clv_value} -> "
        f"{result.parquet_path}, {result.csv_path.name}",
        soft_wrap=True,
    )
