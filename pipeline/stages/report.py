"""`churn report`: one self-contained HTML page of where churn stands, written to
`<workdir>/reports/report_<as_of>.html` (atomically: a temp file renamed into place).

It gathers what the other stages published or logged: the at-risk list of an as-of date (the latest scored
by default) and its manifest (counts, list size, drift), the KPIs of the latest complete periods (computed
here by `stages.kpis.compute_kpis`), the out-of-time evaluation of the model version that scored the list
(its MLflow run: metrics, gains/lift and calibration plots) and, when the data has a campaigns table, every
campaign measured against its control group (`stages.campaigns.measured_campaigns`). A missing input leaves
its section with a note saying why, never blank; the only hard requirement is a scored list.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from churn_pipeline.core.artifacts import (
    AT_RISK_FILE,
    MANIFEST_FILE,
    SCORES_FILE,
    published_as_of,
    report_path,
    score_dir,
)
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import DataValidationError, ModelNotFoundError
from churn_pipeline.core.progress import Steps
from churn_pipeline.data.io import atomic_write_text
from churn_pipeline.models.registry import ModelRun, model_run
from churn_pipeline.stages.campaigns import CampaignReport, measured_campaigns
from churn_pipeline.stages.kpis import compute_kpis
from churn_pipeline.stages.report_html import MODEL_FIGURES, ReportInputs, Section, render_report
from churn_pipeline.stages.score import validated_source

log = logging.getLogger(__name__)

EVALUATION_ARTIFACT = "evaluation/metrics.json"


@dataclass(frozen=True)
class ReportResult:
    """The written report: where, for which list, its sections (filled, or the note saying why not)."""

    path: Path
    as_of: dt.date
    size_bytes: int
    sections: tuple[Section, ...]
    charts: int
    timings: dict[str, float] = field(default_factory=dict)


def _model_inputs(cfg: Config, manifest: dict) -> tuple[ModelRun | None, dict[str, bytes], dict | None, str]:
    """The run of the version that scored the list, its evaluation plots and figures, or a note why not."""
    name, version = manifest["model"]["name"], str(manifest["model"]["version"])
    try:
        run = model_run(cfg.tracking_uri, name, version)
    except ModelNotFoundError as e:
        return None, {}, None, f"the model that scored this list is not in the registry: {e}"
    figures = {path: data for path in MODEL_FIGURES if (data := run.artifact(path)) is not None}
    raw = run.artifact(EVALUATION_ARTIFACT)
    evaluation = json.loads(raw) if raw is not None else None
    note = "" if figures else f"run {run.run_id} of {name} v{version} logged no evaluation plots"
    return run, figures, evaluation, note


def gather_inputs(cfg: Config, as_of: dt.date | None = None, steps: Steps | None = None) -> ReportInputs:
    """Everything the report shows for the list scored as of `as_of` (default: the latest)."""
    steps = steps or Steps(total=0, progress=False, title="report")
    as_of = published_as_of(cfg.workdir, as_of)
    notes: dict[str, str] = {}
    with steps.step("read the at-risk list"):
        folder = score_dir(cfg.workdir, as_of)
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        at_risk = pd.read_parquet(folder / AT_RISK_FILE)
        scores = pd.read_parquet(folder / SCORES_FILE, columns=["churn_probability"])
    with steps.step("open and validate data"):
        source = validated_source(cfg, None)
    with steps.step("KPIs"):
        try:
            kpis, _ = compute_kpis(cfg, source)
        except DataValidationError as e:
            kpis, notes["kpis"] = None, f"no KPIs: {'; '.join(e.problems)}"
    with steps.step("model evaluation (MLflow)"):
        run, figures, evaluation, model_note = _model_inputs(cfg, manifest)
    if model_note:
        notes["model"] = model_note
    campaigns: CampaignReport | None = None
    with steps.step("campaigns"):
        if source.tables.campaigns is None:
            notes["campaigns"] = (
                f"no campaigns table in the data ({cfg.data.source_label}): campaign results appear here once "
                "the contacted and held-out customers of a list are recorded in campaigns.parquet (see README "
                "'Campaign results')"
            )
        else:
            campaigns = measured_campaigns(cfg, source)
    return ReportInputs(
        as_of=as_of,
        source_label=cfg.data.source_label,
        data_end_date=source.data_end_date,
        manifest=manifest,
        at_risk=at_risk,
        probabilities=scores["churn_probability"].to_numpy(),
        kpis=kpis,
        kpi_period=cfg.kpis.period,
        model=run,
        model_figures=figures,
        model_evaluation=evaluation,
        campaigns=campaigns,
        notes=notes,
    )


_STEPS = 7


def run_report(cfg: Config, as_of: dt.date | None = None, *, progress: bool = False) -> ReportResult:
    """Gather the inputs of the list scored as of `as_of` (default: the latest), render the report and write
    it to `<workdir>/reports/report_<as_of>.html` in one rename."""
    steps = Steps(total=_STEPS, progress=progress, title="report")
    try:
        inputs = gather_inputs(cfg, as_of, steps)
        with steps.step("render"):
            rendered = render_report(inputs)
        path = report_path(cfg.workdir, inputs.as_of)
        with steps.step("write"):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(rendered.html, path)
    finally:
        steps.close()
    log.info("report of the list scored as of %s -> %s", inputs.as_of, path)
    return ReportResult(
        path=path,
        as_of=inputs.as_of,
        size_bytes=path.stat().st_size,
        sections=rendered.sections,
        charts=rendered.charts,
        timings=dict(steps.timings),
    )
