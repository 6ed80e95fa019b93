"""Commands: `churn campaign-report` (every campaign measured against its control group) and
`churn train-uplift` (who a contact saves, learnt from those campaigns)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import typer
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
    from churn_pipeline.stages.campaigns import CampaignReport
    from churn_pipeline.stages.uplift import UpliftResult

app = typer.Typer()


@app.command("campaign-report")
def campaign_report(
    config: ConfigOpt = None, data: DataOpt = None, engine: EngineOpt = None, out: OutOpt = None
) -> None:
    """Measure every retention campaign in the campaigns table: churn of the contacted against the control
    group within the label horizon, customers saved (with a 95% interval), contact conversion and ROI."""
    with reported_errors():
        from churn_pipeline.stages.campaigns import run_campaign_report

        cfg = load(config, data, out, engine=engine)
        report = run_campaign_report(cfg)
    print_after_publish(f"the campaign report ({report.paths[0].parent})", _print_report, report)


def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.1%}"


def _print_report(report: CampaignReport) -> None:
    table = Table(
        title=f"Campaigns measured {report.horizon_days} days after their list's as-of date "
        f"(data to {report.data_end_date}; {report.confidence:.0%} intervals)",
        title_justify="left",
    )
    for col in ("campaign", "tier", "treated", "control", "churn treated", "churn control", "uplift (pp)",
                "saved [interval]", "conversion", "ROI"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("campaign", "tier") else "right")
    for row in report.effects.itertuples(index=False):
        if row.campaign_id == "all" and row.risk_tier == "all":
            table.add_section()
        table.add_row(
            str(row.campaign_id),
            str(row.risk_tier),
            f"{row.treated:,}",
            f"{row.control:,}",
            _pct(row.churn_rate_treated),
            _pct(row.churn_rate_control),
            "-" if not np.isfinite(row.uplift) else f"{100 * row.uplift:+.1f} [{100 * row.uplift_low:+.1f}, {100 * row.uplift_high:+.1f}]",
            "-" if not np.isfinite(row.saved) else f"{row.saved:,.1f} [{row.saved_low:,.1f}, {row.saved_high:,.1f}]",
            _pct(row.contact_conversion),
            "-" if not np.isfinite(row.roi) else f"{row.roi:+.0%}",
            style="bold" if row.risk_tier == "all" else None,
        )  # fmt: skip
    console.print(table)
    overall = report.overall
    if overall is not None:
        console.print(
            f"All measured campaigns: [bold]{overall.saved:,.1f}[/] customers saved "
            f"({report.confidence:.0%} interval {overall.saved_low:,.1f} to {overall.saved_high:,.1f}) among "
            f"{overall.treated:,} contacted; value saved {overall.value_saved:,.0f} for an offer cost of "
            f"{overall.offer_cost:,.0f}",
            soft_wrap=True,
        )
    if report.in_progress:
        console.print(f"Not measured yet (horizon not over in the data): {', '.join(report.in_progress)}")
    if report.left_before_contact:
        console.print(
            f"{report.left_before_contact:,} contacts left out: the customer had left before the contact"
        )
    console.print(f"Written: {', '.join(str(p) for p in report.paths)}; MLflow run {report.run_id}")


@app.command("train-uplift")
def train_uplift(
    config: ConfigOpt = None, data: DataOpt = None, engine: EngineOpt = None, out: OutOpt = None
) -> None:
    """Learn from past campaigns how much a contact lowers each customer's churn (an X-learner on LightGBM),
    judge it out of time on the latest campaigns against ranking by risk, and register it."""
    with reported_errors():
        from churn_pipeline.stages.uplift import run_uplift_training

        cfg = load(config, data, out, engine=engine)
        result = run_uplift_training(cfg)
    print_after_publish("the uplift model", _print_uplift, result)


def _print_uplift(result: UpliftResult) -> None:
    ev, ts = result.evaluation, result.training_set
    table = Table(
        title=f"Out of time: {', '.join(ev.test_campaigns)} ({ev.rows:,} targets), fitted on the "
        f"{len(ts.campaigns) - len(ev.test_campaigns)} earlier campaigns",
        title_justify="left",
    )
    table.add_column("ranking")
    table.add_column("Qini coefficient", justify="right")
    for share in ev.shares:
        table.add_column(f"saved, top {share:.0%}", justify="right")
    for name, curve in (("by uplift", ev.by_uplift), ("by risk", ev.by_risk)):
        table.add_row(name, f"{curve.coefficient():.2f}", *(f"{curve.saved_at(s):.1f}" for s in ev.shares))
    console.print(table)
    from churn_pipeline.models.uplift import ESTIMATOR_NAMES

    status = "champion" if result.promoted else "not promoted"
    console.print(
        f"Registered uplift model v{result.version} ({status}): {result.reason}. "
        f"{ESTIMATOR_NAMES[result.model.estimator]} trained on {len(ts.frame):,} "
        f"targets of {len(ts.campaigns)} campaigns, {len(ts.feature_names)} features; MLflow run {result.run_id}",
        soft_wrap=True,
    )
