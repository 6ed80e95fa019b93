"""The HTML of `churn report`: one page with everything inline (CSS in a style tag, charts as inline SVG drawn
by matplotlib, the MLflow run's PNG plots as base64 data), so it opens offline and can be mailed as one file.

Pure: `render_report` turns the gathered `ReportInputs` into the page and says which sections have data;
`stages.report` reads the inputs and writes the page. A section without data keeps its place and says why.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import jinja2
import matplotlib
import numpy as np
import pandas as pd
from markupsafe import Markup
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from churn_pipeline.core.artifacts import CONTROL, TREATMENT
from churn_pipeline.features.catalog import family_of_reason
from churn_pipeline.models.campaign_effect import ALL
from churn_pipeline.models.registry import ModelRun
from churn_pipeline.stages.campaigns import CampaignReport

# The evaluation plots of a training run (stages.tracking logs them) the model section shows, with captions.
MODEL_FIGURES = {
    "plots/gains_lift.png": "Cumulative gains and lift on the out-of-time test snapshots",
    "plots/calibration.png": "Calibration (reliability) and predicted probabilities on the test snapshots",
}
# Test metrics of the registered model (`test_model_<metric>` in its run): label, format, what it means.
MODEL_METRICS = (
    ("roc_auc", "ROC AUC", "{:.3f}", "ranking quality (0.5 = random)"),
    ("pr_auc", "PR AUC", "{:.3f}", "average precision on churners"),
    ("top_decile_lift", "Top-decile lift", "{:.2f}", "churn rate of the riskiest 10% / overall churn rate"),
    ("precision_at_list", "Precision at list size", "{:.3f}", "share of listed customers who churned"),
    ("recall_at_list", "Recall at list size", "{:.3f}", "share of churners the list reached"),
    ("brier", "Brier score", "{:.4f}", "mean squared error of the probabilities (lower is better)"),
    (
        "ece",
        "Expected calibration error",
        "{:.4f}",
        "gap between predicted and observed rates (lower is better)",
    ),
    ("churn_rate", "Churn rate (test)", "{:.3f}", "observed churn rate of the test rows"),
    ("rows", "Test rows", "{:,.0f}", "customer snapshots judged"),
)
# KPI trends drawn (overall, per period): column, title.
KPI_CHARTS = (
    ("customers_end", "Active customers (end of period)"),
    ("churn_rate_pct", "Churn rate %"),
    ("revenue_churn_pct", "Revenue churn %"),
    ("nps", "NPS"),
    ("complaints_per_100_customers", "Complaints per 100 customers"),
    ("first_response_median_minutes", "First response, median minutes"),
    ("first_contact_resolution_pct", "First-contact resolution %"),
    ("clv", "Customer lifetime value"),
)
KPI_TABLE = (
    ("customers_start", "Customers at start", "{:,.0f}"),
    ("new_customers", "New customers", "{:,.0f}"),
    ("lost_customers", "Lost customers", "{:,.0f}"),
    ("churn_rate_pct", "Churn rate %", "{:.2f}"),
    ("retention_rate_pct", "Retention rate %", "{:.2f}"),
    ("revenue_churn_pct", "Revenue churn %", "{:.2f}"),
    ("first_response_median_minutes", "First response, median min", "{:,.0f}"),
    ("first_contact_resolution_pct", "First-contact resolution %", "{:.1f}"),
    ("complaints_per_100_customers", "Complaints per 100 customers", "{:.2f}"),
    ("nps", "NPS", "{:.1f}"),
    ("clv", "CLV", "{:,.0f}"),
)
DRIFT_SHOWN = 15
REASONS_SHOWN = 10
SECTION_TITLES = {
    "kpis": "KPI trends",
    "at_risk": "At-risk list",
    "model": "Model quality (out of time)",
    "drift": "Drift",
    "campaigns": "Campaign results",
}
_BLUE, _ORANGE, _GREY, _RED = "#1f77b4", "#ff7f0e", "#9e9e9e", "#d62728"


@dataclass(frozen=True)
class ReportInputs:
    """What the report shows, as read by `stages.report.gather_inputs`; None where an input is missing (its
    `notes[section]` says why)."""

    as_of: dt.date
    source_label: str
    data_end_date: dt.date
    manifest: dict  # the scoring run's manifest.json
    at_risk: pd.DataFrame  # at_risk.parquet (AT_RISK_COLUMNS)
    probabilities: np.ndarray  # churn_probability of every scored customer
    kpis: pd.DataFrame | None = None  # KPI_COLUMNS
    kpi_period: str = "month"
    model: ModelRun | None = None
    model_figures: dict[str, bytes] = field(default_factory=dict)  # MODEL_FIGURES path -> PNG bytes
    model_evaluation: dict | None = None  # the run's evaluation/metrics.json
    campaigns: CampaignReport | None = None
    notes: dict[str, str] = field(default_factory=dict)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class Section:
    """One section of the report: filled with data, or holding the `note` that says why not."""

    key: str
    title: str
    filled: bool
    note: str = ""


@dataclass(frozen=True)
class RenderedReport:
    html: str
    sections: tuple[Section, ...]
    charts: int


# ------------------------------------------------------------------------------------------ numbers


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def fmt(value: object, pattern: str = "{:,.0f}") -> str:
    """A number for the page, '-' when missing."""
    return "-" if _missing(value) else pattern.format(value)


def tier_summary(at_risk: pd.DataFrame) -> pd.DataFrame:
    """Per risk tier (list order): customers, treatment, control, mean churn probability, expected value at
    risk (customers beyond every tier as 'none')."""
    tier = at_risk["risk_tier"].astype(object).where(at_risk["risk_tier"].notna(), "none")
    frame = at_risk.assign(tier=tier, is_control=at_risk["group"] == CONTROL)
    grouped = frame.groupby("tier", sort=False)
    out = pd.DataFrame(
        {
            "customers": grouped.size(),
            "control": grouped["is_control"].sum().astype(int),
            "mean_probability": grouped["churn_probability"].mean(),
            "value_at_risk": grouped["expected_value_at_risk"].sum(min_count=1),
        }
    )
    out["treatment"] = out["customers"] - out["control"]
    order = frame.groupby("tier", sort=False)["rank"].min().sort_values().index
    return out.loc[order].reset_index(names="tier")


def reason_families(at_risk: pd.DataFrame) -> pd.Series:
    """The family of each listed customer's dominant reason (`reason_1`); 'none' without a reason."""
    first = at_risk["reason_1"].astype(object)
    texts = first.dropna().unique()
    family_of = {t: family_of_reason(str(t)) for t in texts}  # once per distinct text, not per customer
    return first.map(family_of).fillna("none").rename("family")


def family_by_tier(at_risk: pd.DataFrame) -> pd.DataFrame:
    """Listed customers per dominant reason family (rows, most first) and tier (columns, list order), with
    the family's suggested actions."""
    tiers = tier_summary(at_risk)["tier"]
    tier = at_risk["risk_tier"].astype(object).where(at_risk["risk_tier"].notna(), "none")
    fam = reason_families(at_risk)
    table = pd.crosstab(fam, tier).reindex(columns=tiers, fill_value=0)
    table["customers"] = table.sum(axis=1)
    actions = (
        pd.DataFrame({"family": fam, "action": at_risk["suggested_action"]})
        .groupby("family")["action"]
        .agg(lambda a: ", ".join(a.value_counts().index))
    )
    table["actions"] = actions.reindex(table.index)
    return (
        table.sort_values(["customers"], ascending=False, kind="stable").rename_axis("family").reset_index()
    )


def action_counts(at_risk: pd.DataFrame) -> pd.DataFrame:
    """Listed customers per suggested action (most first) and their share of the list."""
    counts = at_risk["suggested_action"].fillna("none").value_counts()
    return pd.DataFrame(
        {
            "action": counts.index,
            "customers": counts.to_numpy(),
            "share": counts.to_numpy() / max(len(at_risk), 1),
        }
    )


def top_reasons(at_risk: pd.DataFrame, k: int = REASONS_SHOWN) -> pd.DataFrame:
    """The `k` reasons given most often (any of reason_1..3) and how many listed customers have each."""
    cols = [c for c in at_risk.columns if c.startswith("reason_")]
    stacked = at_risk[cols].stack().dropna()
    counts = stacked.value_counts().head(k)
    return pd.DataFrame({"reason": counts.index, "customers": counts.to_numpy()})


# ------------------------------------------------------------------------------------------ charts


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasSVG(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def svg(fig: Figure) -> Markup:
    """The figure as an inline SVG element (text as text in the page's font; no XML prolog, no metadata)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "churn-report"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if start >= 0 and end > start:
        text = text[:start] + text[end + len("</metadata>") :]
    return Markup(text)


def png(data: bytes, alt: str) -> Markup:
    """A PNG as an inline image."""
    encoded = base64.b64encode(data).decode("ascii")
    return Markup('<img alt="{}" src="data:image/png;base64,{}">').format(alt, Markup(encoded))


def kpi_trends_figure(overall: pd.DataFrame, charts: Sequence[tuple[str, str]]) -> Figure:
    """Small multiples: one KPI per panel over the periods (all customers)."""
    ncols = min(4, len(charts))
    nrows = math.ceil(len(charts) / ncols)
    fig, axes = _figure(3.2 * ncols, 2.4 * nrows, nrows, ncols)
    x = pd.to_datetime(overall["period_start"])
    for ax, (col, title) in zip(axes, charts, strict=False):
        y = pd.to_numeric(overall[col], errors="coerce")
        ax.plot(x, y, marker="o", ms=3, color=_BLUE)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", rotation=45)
        ax.grid(alpha=0.3)
    for ax in axes[len(charts) :]:
        ax.set_visible(False)
    return fig


def tier_figure(tiers: pd.DataFrame) -> Figure:
    """Listed customers per tier, contacted (treatment) and held out (control)."""
    fig, (ax,) = _figure(5.0, 3.0)
    ax.bar(tiers["tier"], tiers["treatment"], color=_BLUE, label=TREATMENT)
    ax.bar(
        tiers["tier"],
        tiers["control"],
        bottom=tiers["treatment"],
        color=_ORANGE,
        label=f"{CONTROL} (held out)",
    )
    ax.set(ylabel="customers", title="At-risk customers per tier")
    ax.legend(fontsize=8)
    return fig


def family_figure(families: pd.DataFrame, tiers: Sequence[str]) -> Figure:
    """Listed customers per dominant reason family, stacked by tier."""
    t = families.iloc[::-1]
    fig, (ax,) = _figure(6.0, max(2.4, 0.35 * len(t) + 1.2))
    left = np.zeros(len(t))
    colors = matplotlib.colormaps["Blues_r"](np.linspace(0.1, 0.7, max(len(tiers), 1)))
    for tier, color in zip(tiers, colors, strict=False):
        ax.barh(t["family"], t[tier], left=left, color=color, label=tier)
        left += t[tier].to_numpy()
    ax.set(xlabel="customers", title="Dominant reason family")
    ax.legend(fontsize=8, title="tier", title_fontsize=8)
    return fig


def probability_figure(probabilities: np.ndarray, cutoff: float | None) -> Figure:
    """Churn probabilities of every scored customer, with the list's cut-off."""
    fig, (ax,) = _figure(5.0, 3.0)
    ax.hist(probabilities, bins=50, range=(0, 1), color=_GREY)
    if cutoff is not None:
        ax.axvline(cutoff, color=_RED, ls="--", label=f"list cut-off {cutoff:.3f}")
        ax.legend(fontsize=8)
    ax.set(xlabel="churn probability", ylabel="customers", yscale="log", title="Scored customers")
    return fig


def drift_figure(psi: pd.Series, warn: float | None, fail: float | None) -> Figure:
    """PSI of the most drifted features against the warn and fail thresholds."""
    t = psi.iloc[::-1]
    fig, (ax,) = _figure(6.0, max(2.4, 0.3 * len(t) + 1.2))
    colors = [_RED if fail is not None and v >= fail else _ORANGE if warn is not None and v >= warn else _BLUE
              for v in t.to_numpy()]  # fmt: skip
    ax.barh(t.index.astype(str), t.to_numpy(), color=colors)
    if warn is not None:
        ax.axvline(warn, color=_ORANGE, ls="--", lw=1, label=f"warn {warn:g}")
    if fail is not None:
        ax.axvline(fail, color=_RED, ls="--", lw=1, label=f"fail {fail:g}")
    ax.set(xlabel="population stability index (PSI)", title="Feature drift since training")
    if warn is not None or fail is not None:
        ax.legend(fontsize=8)
    return fig


def campaigns_figure(totals: pd.DataFrame) -> Figure:
    """Customers saved per campaign with the interval."""
    fig, (ax,) = _figure(6.0, 3.2)
    x = np.arange(len(totals))
    saved = totals["saved"].to_numpy(dtype=float)
    low = np.nan_to_num(saved - totals["saved_low"].to_numpy(dtype=float))
    high = np.nan_to_num(totals["saved_high"].to_numpy(dtype=float) - saved)
    ax.bar(x, saved, color=_BLUE, yerr=[low, high], capsize=3, ecolor="#333333")
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(x, totals["campaign_id"].astype(str), rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="customers saved", title="Customers saved per campaign (interval)")
    return fig


# ------------------------------------------------------------------------------------------ sections


def _kpis(inputs: ReportInputs) -> dict | None:
    if inputs.kpis is None or inputs.kpis.empty:
        return None
    overall = inputs.kpis[inputs.kpis["segment"] == ALL].sort_values("period_start")
    charts = [(c, t) for c, t in KPI_CHARTS if pd.to_numeric(overall[c], errors="coerce").notna().any()]
    latest = overall.iloc[-1]
    previous = overall.iloc[-2] if len(overall) > 1 else None
    rows = []
    for col, label, pattern in KPI_TABLE:
        now = latest[col]
        before = previous[col] if previous is not None else None
        change = None if _missing(now) or _missing(before) else float(now) - float(before)
        rows.append({"key": col, "label": label, "value": fmt(now, pattern), "raw": "" if _missing(now) else now,
                     "previous": fmt(before, pattern), "change": fmt(change, "{:+,.2f}")})  # fmt: skip
    missing = [t for c, t in KPI_CHARTS if (c, t) not in charts]
    return {
        "chart": svg(kpi_trends_figure(overall, charts)) if charts else None,
        "rows": rows,
        "latest": latest["period_start"],
        "latest_end": latest["period_end"],
        "first": overall.iloc[0]["period_start"],
        "periods": len(overall),
        "missing": missing,
    }


def _at_risk(inputs: ReportInputs) -> dict | None:
    at_risk = inputs.at_risk
    if at_risk.empty:
        return None
    tiers = tier_summary(at_risk)
    families = family_by_tier(at_risk)
    m = inputs.manifest
    return {
        "tiers": tiers.to_dict("records"),
        "families": families.to_dict("records"),
        "tier_names": list(tiers["tier"]),
        "actions": action_counts(at_risk).to_dict("records"),
        "reasons": top_reasons(at_risk).to_dict("records"),
        "tier_chart": svg(tier_figure(tiers)),
        "family_chart": svg(family_figure(families, list(tiers["tier"]))),
        "probability_chart": svg(
            probability_figure(inputs.probabilities, float(at_risk["churn_probability"].min()))
        ),
        "list_size": m.get("list_size", {}),
        "value": m.get("value", {}),
        "uplift_model": m.get("uplift_model"),  # set when the list is ranked by saved value
        "saved_value": float(at_risk["expected_saved_value"].sum())
        if "expected_saved_value" in at_risk
        else None,
    }


def _model(inputs: ReportInputs) -> dict | None:
    run = inputs.model
    if run is None:
        return None
    metrics = []
    for key, label, pattern, meaning in MODEL_METRICS:
        value = run.metrics.get(f"test_model_{key}")
        if value is not None:
            metrics.append(
                {"key": key, "label": label, "value": fmt(value, pattern), "raw": value, "meaning": meaning}
            )
    oracle = run.metrics.get("test_model_to_oracle_roc_auc")
    figures = [
        {"image": png(data, MODEL_FIGURES[p]), "caption": MODEL_FIGURES[p]}
        for p, data in inputs.model_figures.items()
    ]
    ev = inputs.model_evaluation or {}
    return {
        "run": run,
        "metrics": metrics,
        "figures": figures,
        "oracle_auc_ratio": None if oracle is None else f"{oracle:.3f}",
        "test_snapshots": ", ".join(ev.get("test_snapshots") or []) or run.tags.get("split.kind", "-"),
        "candidate": run.tags.get("candidate.chosen", "-"),
        "trained_at": inputs.manifest["model"].get("trained_at") or "-",
    }  # fmt: skip


def _drift(inputs: ReportInputs) -> tuple[dict | None, str]:
    drift = inputs.manifest.get("checks", {}).get("drift", {})
    if drift.get("status") == "skipped" or not drift.get("psi"):
        return (
            None,
            f"no drift figures for this list: {drift.get('reason') or 'the scoring run recorded no PSI'}",
        )
    psi = pd.Series(drift["psi"], dtype=float).sort_values(ascending=False)
    warn, fail = drift.get("warn_psi"), drift.get("fail_psi")
    shown = psi.head(DRIFT_SHOWN)
    # above fail_psi but not gated: the feature trends with time over the training snapshots
    trending = dict(drift.get("trending") or {})
    rows = [{"feature": f, "psi": f"{v:.4f}", "raw": v,
             "status": "trending" if f in trending else "fail" if fail is not None and v >= fail
             else "warn" if warn is not None and v >= warn else "ok"}
            for f, v in shown.items()]  # fmt: skip
    return {
        "status": drift["status"],
        "warn": warn,
        "fail": fail,
        "features": len(psi),
        "warnings": dict(drift.get("warnings") or {}),
        "trending": trending,
        "rows": rows,
        "chart": svg(drift_figure(shown, warn, fail)),
    }, ""


def _campaigns(inputs: ReportInputs) -> tuple[dict | None, str]:
    report = inputs.campaigns
    if report is None:
        return None, ""
    totals = report.effects[(report.effects["risk_tier"] == ALL) & (report.effects["campaign_id"] != ALL)]
    if totals.empty:
        waiting = ", ".join(report.in_progress) or "none"
        return None, (
            f"no campaign can be measured yet: a campaign is measured {report.horizon_days} days (the label "
            f"horizon) after its list's as-of date; still running in the data to {report.data_end_date}: {waiting}"
        )
    rows = [{"campaign": str(r.campaign_id), "as_of": str(r.as_of), "treated": f"{r.treated:,}", "control": f"{r.control:,}",
             "churn_treated": fmt(r.churn_rate_treated, "{:.1%}"), "churn_control": fmt(r.churn_rate_control, "{:.1%}"),
             "uplift": fmt(100 * r.uplift, "{:+.1f}"), "saved": fmt(r.saved, "{:,.1f}"), "raw_saved": r.saved, "raw_treated": r.treated, "raw_control": r.control,
             "interval": f"{fmt(r.saved_low, '{:,.1f}')} to {fmt(r.saved_high, '{:,.1f}')}",
             "roi": fmt(r.roi, "{:+.0%}")} for r in totals.itertuples(index=False)]  # fmt: skip
    overall = report.overall
    return {
        "rows": rows,
        "chart": svg(campaigns_figure(totals)),
        "overall": overall,
        "overall_saved": None if overall is None else f"{overall.saved:,.1f}",
        "overall_interval": None
        if overall is None
        else f"{overall.saved_low:,.1f} to {overall.saved_high:,.1f}",
        "confidence": f"{report.confidence:.0%}",
        "horizon": report.horizon_days,
        "in_progress": ", ".join(report.in_progress),
        "left": report.left_before_contact,
    }, ""


def render_report(inputs: ReportInputs) -> RenderedReport:
    """The report page and its sections (filled, or with the note that says why not)."""
    notes = dict(inputs.notes)
    kpis = _kpis(inputs)
    if kpis is None:
        notes.setdefault("kpis", "no KPI rows for the latest periods")
    at_risk = _at_risk(inputs)
    if at_risk is None:
        notes.setdefault("at_risk", f"the list scored as of {inputs.as_of} is empty: nobody was at risk")
    model = _model(inputs)
    if model is None:
        notes.setdefault("model", "no MLflow run for the model that scored this list")
    elif not model["figures"]:
        notes.setdefault("model", "the model's run logged no evaluation plots")
    drift, drift_note = _drift(inputs)
    if drift is None:
        notes.setdefault("drift", drift_note)
    campaigns, campaign_note = _campaigns(inputs)
    if campaigns is None:
        notes.setdefault("campaigns", campaign_note or "no campaign results")
    data = {"kpis": kpis, "at_risk": at_risk, "model": model, "drift": drift, "campaigns": campaigns}
    filled = {key: value is not None for key, value in data.items()}
    filled["model"] = model is not None and bool(model["figures"])
    sections = tuple(
        Section(key, title, filled[key], "" if filled[key] else notes.get(key, ""))
        for key, title in SECTION_TITLES.items()
    )
    html = _TEMPLATE.render(
        inputs=inputs,
        m=inputs.manifest,
        sections=sections,
        notes=notes,
        fmt=fmt,
        **data,
    )
    return RenderedReport(html=html, sections=sections, charts=html.count("<svg") + html.count("<img"))


_ENV = jinja2.Environment(
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)
_TEMPLATE = _ENV.from_string(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Churn report {{ inputs.as_of }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #222; background: #f5f6f8; }
header { background: #1f3a5f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; opacity: .85; font-size: 14px; }
nav { background: #fff; padding: 8px 32px; border-bottom: 1px solid #ddd; position: sticky; top: 0; }
nav a { margin-right: 18px; color: #1f3a5f; text-decoration: none; font-size: 14px; }
main { padding: 8px 32px 32px; max-width: 1400px; }
section { background: #fff; border-radius: 6px; padding: 16px 22px; margin: 18px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { margin-top: 0; font-size: 20px; color: #1f3a5f; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0; }
.card { background: #fff; border-radius: 6px; padding: 10px 16px; min-width: 150px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .label { font-size: 12px; color: #666; } .card .value { font-size: 22px; font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 22px; align-items: flex-start; }
.chart { flex: 1 1 420px; min-width: 320px; margin: 0; }
.chart.wide { flex-basis: 100%; max-width: 1100px; }
.chart svg, .chart img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: #666; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e3e3; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 10px 14px; margin: 8px 0; }
.muted { color: #666; font-size: 13px; }
.status-warn, .status-trending { color: #b26a00; font-weight: 600; } .status-fail { color: #c62828; font-weight: 600; }
.status-ok, .status-passed { color: #2e7d32; font-weight: 600; }
</style>
</head>
<body>
<header>
<h1>Churn report: at-risk list as of {{ inputs.as_of }}</h1>
<p>Data: {{ inputs.source_label }} (to {{ inputs.data_end_date }}) &middot; model {{ m.model.name }}
v{{ m.model.version }} &middot; generated {{ inputs.generated_at.strftime("%Y-%m-%d %H:%M") }} UTC</p>
</header>
<nav>{% for s in sections %}<a href="#{{ s.key }}">{{ s.title }}</a>{% endfor %}</nav>
<main>
<div class="cards" id="headline">
<div class="card"><div class="label">Customers scored</div><div class="value">{{ fmt(m.counts.active_scored) }}</div></div>
<div class="card"><div class="label">At risk (listed)</div><div class="value" data-value="{{ m.counts.at_risk }}">{{ fmt(m.counts.at_risk) }}</div></div>
<div class="card"><div class="label">List size</div><div class="value">{{ fmt(m.list_size.pct, "{:.2f}") }}%</div></div>
<div class="card"><div class="label">Held out (control)</div><div class="value">{{ fmt(m.counts.control | default(0)) }}</div></div>
<div class="card"><div class="label">Expected value at risk</div><div class="value">{{ fmt(m.value.total_expected_value_at_risk) }}</div></div>
<div class="card"><div class="label">Drift check</div><div class="value status-{{ m.checks.drift.status }}">{{ m.checks.drift.status }}</div></div>
</div>

<section id="kpis">
<h2>KPI trends</h2>
{% if kpis %}
<p class="muted">All customers, per {{ inputs.kpi_period }}: {{ kpis.periods }} complete {{ inputs.kpi_period }}s from
{{ kpis.first }} to {{ kpis.latest_end }} (exclusive). Every KPI of a period uses only what was known at its end.</p>
{% if kpis.chart %}<div class="chart">{{ kpis.chart }}</div>{% endif %}
{% if kpis.missing %}<p class="muted">Not in the data (their tables or columns are missing): {{ kpis.missing | join(", ") }}.</p>{% endif %}
<h3>Latest {{ inputs.kpi_period }} (starting {{ kpis.latest }}) against the one before</h3>
<table id="kpi-table"><tr><th>KPI</th><th class="num">latest</th><th class="num">previous</th><th class="num">change</th></tr>
{% for r in kpis.rows %}<tr data-kpi="{{ r.key }}" data-value="{{ r.raw }}"><td>{{ r.label }}</td><td class="num">{{ r.value }}</td><td class="num">{{ r.previous }}</td><td class="num">{{ r.change }}</td></tr>
{% endfor %}</table>
{% else %}<p class="note">{{ notes.kpis }}</p>{% endif %}
</section>

<section id="at_risk">
<h2>At-risk list</h2>
{% if at_risk %}
<p class="muted">{{ fmt(m.counts.at_risk) }} customers listed (top {{ fmt(at_risk.list_size.pct, "{:.2f}") }}% of
{{ fmt(m.counts.active_scored) }} scored; size from {{ at_risk.list_size.origin }}); value from {{ at_risk.value.origin }}.</p>
{% if at_risk.uplift_model %}<p class="muted" id="ranked-by">Ranked by expected saved value (uplift x value) with
{{ at_risk.uplift_model.name }} v{{ at_risk.uplift_model.version }}: {{ fmt(at_risk.saved_value) }} expected to be saved by contacting the list.</p>
{% else %}<p class="muted" id="ranked-by">Ranked by churn risk (scoring.rank_by: risk).</p>{% endif %}
<div class="row">
<div class="chart">{{ at_risk.tier_chart }}</div>
<div class="chart">{{ at_risk.probability_chart }}</div>
</div>
<h3>By tier</h3>
<table id="tiers"><tr><th>tier</th><th class="num">customers</th><th class="num">contacted</th><th class="num">held out</th><th class="num">mean churn probability</th><th class="num">expected value at risk</th></tr>
{% for t in at_risk.tiers %}<tr data-tier="{{ t.tier }}" data-customers="{{ t.customers }}" data-control="{{ t.control }}"><td>{{ t.tier }}</td><td class="num">{{ fmt(t.customers) }}</td><td class="num">{{ fmt(t.treatment) }}</td><td class="num">{{ fmt(t.control) }}</td><td class="num">{{ fmt(t.mean_probability, "{:.3f}") }}</td><td class="num">{{ fmt(t.value_at_risk) }}</td></tr>
{% endfor %}</table>
<h3>By reason family and suggested action</h3>
<div class="row">
<div class="chart">{{ at_risk.family_chart }}</div>
<div>
<table id="families"><tr><th>dominant reason family</th>{% for t in at_risk.tier_names %}<th class="num">{{ t }}</th>{% endfor %}<th class="num">customers</th><th>suggested action</th></tr>
{% for f in at_risk.families %}<tr data-family="{{ f.family }}" data-customers="{{ f.customers }}"><td>{{ f.family }}</td>{% for t in at_risk.tier_names %}<td class="num">{{ fmt(f[t]) }}</td>{% endfor %}<td class="num">{{ fmt(f.customers) }}</td><td>{{ f.actions }}</td></tr>
{% endfor %}</table>
<table id="actions"><tr><th>suggested action</th><th class="num">customers</th><th class="num">share</th></tr>
{% for a in at_risk.actions %}<tr data-action="{{ a.action }}" data-customers="{{ a.customers }}"><td>{{ a.action }}</td><td class="num">{{ fmt(a.customers) }}</td><td class="num">{{ fmt(a.share, "{:.1%}") }}</td></tr>
{% endfor %}</table>
</div>
</div>
<h3>Most frequent reasons (any of the three per customer)</h3>
<table id="reasons"><tr><th>reason</th><th class="num">customers</th></tr>
{% for r in at_risk.reasons %}<tr><td>{{ r.reason }}</td><td class="num">{{ fmt(r.customers) }}</td></tr>
{% endfor %}</table>
{% else %}<p class="note">{{ notes.at_risk }}</p>{% endif %}
</section>

<section id="model">
<h2>Model quality (out of time)</h2>
{% if model %}
<p class="muted">{{ model.run.name }} v{{ model.run.version }}{% if model.run.aliases %} ({{ model.run.aliases | join(", ") }}){% endif %},
candidate {{ model.candidate }}, trained {{ model.trained_at }}; judged on the test snapshots {{ model.test_snapshots }}
(later than anything it was developed on); MLflow run {{ model.run.run_id }}.</p>
<table id="model-metrics"><tr><th>test metric</th><th class="num">value</th><th>meaning</th></tr>
{% for r in model.metrics %}<tr data-metric="{{ r.key }}" data-value="{{ r.raw }}"><td>{{ r.label }}</td><td class="num">{{ r.value }}</td><td class="muted">{{ r.meaning }}</td></tr>
{% endfor %}{% if model.oracle_auc_ratio %}<tr><td>ROC AUC / the simulator's oracle</td><td class="num">{{ model.oracle_auc_ratio }}</td><td class="muted">share of the achievable ranking quality</td></tr>{% endif %}
</table>
{% if model.figures %}<div class="row">{% for f in model.figures %}<figure class="chart wide">{{ f.image }}<figcaption>{{ f.caption }}</figcaption></figure>{% endfor %}</div>
{% else %}<p class="note">{{ notes.model }}</p>{% endif %}
{% else %}<p class="note">{{ notes.model }}</p>{% endif %}
</section>

<section id="drift">
<h2>Drift</h2>
{% if drift %}
<p>Drift check at scoring: <span class="status-{{ drift.status }}">{{ drift.status }}</span> &middot; {{ drift.features }} features
compared with the training reference (warn at PSI {{ drift.warn }}, fail at {{ drift.fail }}){% if drift.warnings %};
warnings: {{ drift.warnings | list | join(", ") }}{% endif %}.{% if drift.trending %} Above the fail threshold
but not gated, because they already moved between the first and the last labelled training snapshot (they trend
with time, scoring.drift.trending: warn): {{ drift.trending | list | join(", ") }}.{% endif %}</p>
<div class="row"><div class="chart">{{ drift.chart }}</div>
<table id="drift-table"><tr><th>feature</th><th class="num">PSI</th><th>status</th></tr>
{% for r in drift.rows %}<tr data-feature="{{ r.feature }}" data-value="{{ r.raw }}"><td>{{ r.feature }}</td><td class="num">{{ r.psi }}</td><td class="status-{{ r.status }}">{{ r.status }}</td></tr>
{% endfor %}</table></div>
{% else %}<p class="note">{{ notes.drift }}</p>{% endif %}
</section>

<section id="campaigns">
<h2>Campaign results</h2>
{% if campaigns %}
<p class="muted">Each campaign's contacted customers against its held-out control group, churn measured
{{ campaigns.horizon }} days after the list's as-of date; {{ campaigns.confidence }} intervals.
{% if campaigns.overall is not none %}All measured campaigns: <strong>{{ campaigns.overall_saved }}</strong> customers saved
({{ campaigns.overall_interval }}).{% endif %}</p>
<div class="row"><div class="chart">{{ campaigns.chart }}</div>
<table id="campaigns-table"><tr><th>campaign</th><th>as of</th><th class="num">contacted</th><th class="num">held out</th><th class="num">churn contacted</th><th class="num">churn held out</th><th class="num">uplift (pp)</th><th class="num">saved</th><th class="num">interval</th><th class="num">ROI</th></tr>
{% for r in campaigns.rows %}<tr data-campaign="{{ r.campaign }}" data-treated="{{ r.raw_treated }}" data-control="{{ r.raw_control }}" data-saved="{{ r.raw_saved }}"><td>{{ r.campaign }}</td><td>{{ r.as_of }}</td><td class="num">{{ r.treated }}</td><td class="num">{{ r.control }}</td><td class="num">{{ r.churn_treated }}</td><td class="num">{{ r.churn_control }}</td><td class="num">{{ r.uplift }}</td><td class="num">{{ r.saved }}</td><td class="num">{{ r.interval }}</td><td class="num">{{ r.roi }}</td></tr>
{% endfor %}</table></div>
{% if campaigns.in_progress %}<p class="muted">Not measured yet (horizon not over in the data): {{ campaigns.in_progress }}</p>{% endif %}
{% if campaigns.left %}<p class="muted">{{ fmt(campaigns.left) }} contacts left out: the customer had left before the contact.</p>{% endif %}
{% else %}<p class="note">{{ notes.campaigns }}</p>{% endif %}
</section>
</main>
</body>
</html>
"""
)
