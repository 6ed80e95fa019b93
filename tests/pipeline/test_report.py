"""`churn report`: the page is self-contained, every section is filled or says why not, and its numbers are
those of its inputs (the at-risk list, the scoring manifest, the model's MLflow run, the KPIs, the campaigns).

Fast tests render generated inputs; the slow ones score the shared trained company and report on it (this file
is in conftest.TRAINED_FILES, so it runs on the worker that trained)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.artifacts import AT_RISK_COLUMNS, CONTROL, MANIFEST_FILE, TREATMENT, score_dir
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import OutputMissingError
from churn_pipeline.features.catalog import describe, family
from churn_pipeline.models.campaign_effect import ALL, campaign_effects
from churn_pipeline.stages.campaigns import CampaignReport
from churn_pipeline.stages.report import run_report
from churn_pipeline.stages.report_html import (
    ReportInputs,
    action_counts,
    family_by_tier,
    render_report,
    tier_summary,
)
from tests.pipeline.report_page import ReportPage, external_links

AS_OF = dt.date(2024, 6, 30)
# (feature, value) behind each generated reason_1, so the expected family is known without reading words back
REASON_FEATURES = (
    ("complaints_30d", 3),
    ("failed_payments_30d", 2),
    ("days_since_last_event", 40),
    ("plan", "basic"),
    ("nps_last", 2),
    ("contacts_chat_30d", 5),
)
ACTIONS = {"complaints": "Priority support callback", "payments": "Billing outreach"}


def generated_list(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """An at-risk list as `churn score` writes it, ranked, with three tiers, a control group and reasons."""
    rng = np.random.default_rng(seed)
    probability = np.sort(rng.uniform(0.2, 0.95, n))[::-1]
    rank = np.arange(1, n + 1)
    tier = np.where(rank <= 0.2 * n, "critical", np.where(rank <= 0.5 * n, "high", "elevated"))
    which = rng.integers(0, len(REASON_FEATURES), n)
    feature = np.array([REASON_FEATURES[i][0] for i in which], dtype=object)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "churn_probability": probability,
            "risk_tier": tier,
            "group": np.where(rng.random(n) < 0.1, CONTROL, TREATMENT),
            "expected_value_at_risk": probability * rng.uniform(100, 500, n),
            "uplift": np.nan,
            "expected_saved_value": np.nan,
            "reason_1": [describe(*REASON_FEATURES[i]) for i in which],
            "reason_2": [describe("tenure_days", int(d)) for d in rng.integers(10, 900, n)],
            "reason_3": None,
            "suggested_action": [ACTIONS.get(family(f), "Retention review") for f in feature],
            "rank": rank,
            "as_of": AS_OF,
            "model_version": "3",
        }
    )
    return frame[list(AT_RISK_COLUMNS)].assign(_feature=feature)


def manifest(at_risk: pd.DataFrame, psi: dict[str, float] | None = None) -> dict:
    drift = (
        {"status": "passed", "warn_psi": 0.1, "fail_psi": 0.25, "warnings": {}, "psi": psi}
        if psi
        else {
            "status": "skipped",
            "reason": "the model carries no drift reference",
            "warnings": {},
            "psi": {},
        }
    )
    return {
        "as_of": AS_OF.isoformat(),
        "model": {"name": "churn-classifier", "version": "3", "requested": "champion", "trained_at": None},
        "counts": {
            "active_scored": 5000,
            "at_risk": len(at_risk),
            "control": int((at_risk.group == CONTROL).sum()),
        },
        "list_size": {
            "pct": 100 * len(at_risk) / 5000,
            "customers": len(at_risk),
            "origin": "scoring.list_size",
        },
        "value": {"origin": "evaluation.customer_value", "total_expected_value_at_risk": 1234.5},
        "checks": {"drift": drift},
    }


def inputs(at_risk: pd.DataFrame, **kw) -> ReportInputs:
    return ReportInputs(
        as_of=AS_OF,
        source_label="generated",
        data_end_date=AS_OF,
        manifest=kw.pop("manifest", manifest(at_risk)),
        at_risk=at_risk.drop(columns="_feature"),
        probabilities=np.linspace(0, 1, 5000),
        **kw,
    )


def test_tier_family_and_action_summaries_count_the_list():
    at_risk = generated_list()
    tiers = tier_summary(at_risk)
    assert list(tiers.tier) == ["critical", "high", "elevated"]  # list order, riskiest first
    assert tiers.set_index("tier").customers.to_dict() == at_risk.risk_tier.value_counts().to_dict()
    control = at_risk[at_risk.group == CONTROL].risk_tier.value_counts()
    assert tiers.set_index("tier").control.to_dict() == control.reindex(tiers.tier, fill_value=0).to_dict()
    assert tiers.value_at_risk.sum() == pytest.approx(at_risk.expected_value_at_risk.sum())

    families = family_by_tier(at_risk).set_index("family")
    expected = at_risk._feature.map(family).value_counts()
    assert families.customers.to_dict() == expected.to_dict()
    payments = at_risk[at_risk._feature.map(family) == "payments"].risk_tier.value_counts()
    assert families.loc["payments", list(payments.index)].to_dict() == payments.to_dict()
    assert families.loc["payments", "actions"] == "Billing outreach"

    actions = action_counts(at_risk).set_index("action")
    assert actions.customers.to_dict() == at_risk.suggested_action.value_counts().to_dict()
    assert actions.share.sum() == pytest.approx(1.0)


def test_sections_without_data_keep_their_place_and_say_why():
    at_risk = generated_list()
    rendered = render_report(
        inputs(at_risk, notes={"model": "the model that scored this list is not in the registry: gone"})
    )
    page = ReportPage(rendered.html)
    assert set(page.sections) == {s.key for s in rendered.sections}
    assert external_links(rendered.html) == []
    by_key = {s.key: s for s in rendered.sections}
    assert by_key["at_risk"].filled and page.sections["at_risk"].charts == 3
    for key, words in (("kpis", "no KPI rows"), ("model", "not in the registry"), ("drift", "no drift reference"),
                       ("campaigns", "no campaign results")):  # fmt: skip
        assert not by_key[key].filled and words in by_key[key].note
        assert page.sections[key].notes and words in page.sections[key].notes[0], key
        assert page.sections[key].charts == 0
    tiers = {r["tier"]: int(r["customers"]) for r in page.sections["at_risk"].rows if "tier" in r}
    assert tiers == at_risk.risk_tier.value_counts().to_dict()


def test_drift_and_campaign_sections_show_their_figures():
    at_risk = generated_list()
    psi = {"monthly_fee": 0.3, "tenure_days": 0.12, "complaints_30d": 0.01}
    rng = np.random.default_rng(1)
    n = 800
    contacts = pd.DataFrame(
        {
            "campaign_id": np.where(np.arange(n) < 400, "2024-04", "2024-05"),
            "risk_tier": rng.choice(["critical", "high"], n),
            "as_of": AS_OF,
            "group": np.where(rng.random(n) < 0.5, TREATMENT, CONTROL),
            "churned": (rng.random(n) < 0.2).astype(int),
            "responded": None,
            "value": 300.0,
        }
    )
    effects = campaign_effects(contacts, offer_cost=10.0)
    report = CampaignReport(AS_OF, 30, 0.95, effects, ("2024-06",), 4, ())
    rendered = render_report(inputs(at_risk, manifest=manifest(at_risk, psi), campaigns=report))
    page = ReportPage(rendered.html)
    drift = page.sections["drift"]
    assert drift.charts == 1 and not drift.notes
    shown = {r["feature"]: float(r["value"]) for r in drift.rows}
    assert shown == psi
    assert "fail" in drift.text and "warn" in drift.text
    campaigns = page.sections["campaigns"]
    assert campaigns.charts == 1 and not campaigns.notes
    totals = effects[(effects.risk_tier == ALL) & (effects.campaign_id != ALL)].set_index("campaign_id")
    assert {r["campaign"]: float(r["saved"]) for r in campaigns.rows} == pytest.approx(totals.saved.to_dict())
    assert "2024-06" in campaigns.text  # still inside its horizon, named
    assert f"{report.overall.saved:,.1f}" in campaigns.text


def test_drift_above_fail_in_a_trending_feature_is_marked_trending_not_failed():
    at_risk = generated_list()
    m = manifest(at_risk, {"tenure_days": 8.3, "monthly_fee": 0.3, "complaints_30d": 0.01})
    m["checks"]["drift"].update(status="warn", trending={"tenure_days": 2.1})
    page = ReportPage(render_report(inputs(at_risk, manifest=m)).html)
    drift = page.sections["drift"]
    assert "not gated" in drift.text and "tenure_days" in drift.text.split("not gated")[1]
    html = render_report(inputs(at_risk, manifest=m)).html
    assert 'data-feature="tenure_days"' in html
    row = html.split('data-feature="tenure_days"')[1].split("</tr>")[0]
    assert "status-trending" in row and "status-fail" not in row
    other = html.split('data-feature="monthly_fee"')[1].split("</tr>")[0]
    assert "status-fail" in other


def test_report_needs_a_scored_list_and_names_churn_score(tmp_path):
    cfg = Config(workdir=tmp_path / "work", data={"source": tmp_path / "nowhere"})
    with pytest.raises(OutputMissingError, match="churn score"):
        run_report(cfg)
    assert not (tmp_path / "work" / "reports").exists()
    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "work"), "--data", str(tmp_path)])
    assert result.exit_code == OutputMissingError.exit_code
    assert "churn score" in result.output


# ---------------------------------------------------------------------------------- on a trained company


def _own_workdir(cfg: Config, workdir, **update) -> Config:
    """The trained company's config writing into `workdir`, with the shared registry pinned."""
    tracking = cfg.tracking.model_copy(update={"uri": cfg.tracking_uri})
    return cfg.model_copy(update={"workdir": workdir, "tracking": tracking, **update})


@pytest.mark.slow
def test_report_of_a_scored_list_fills_every_section_with_its_inputs_numbers(trained, tmp_path):
    from mlflow.tracking import MlflowClient

    from churn_pipeline.stages.kpis import compute_kpis
    from churn_pipeline.stages.score import run_scoring, validated_source

    cfg, training = trained
    cfg = _own_workdir(cfg, tmp_path / "work")
    scored = run_scoring(cfg)
    result = run_report(cfg)
    assert result.path == tmp_path / "work" / "reports" / f"report_{scored.as_of}.html"
    html = result.path.read_text(encoding="utf-8")
    assert external_links(html) == [] and "<script" not in html and "<link" not in html
    assert [f.name for f in result.path.parent.iterdir()] == [result.path.name]  # no temp file left
    page = ReportPage(html)
    sections = {s.key: s for s in result.sections}
    assert all(sections[k].filled for k in ("kpis", "at_risk", "model", "drift"))
    assert not sections["campaigns"].filled and "no campaigns table" in sections["campaigns"].note
    assert "no campaigns table" in page.sections["campaigns"].notes[0]
    for key in ("kpis", "at_risk", "model", "drift"):
        assert page.sections[key].charts >= 1 and not page.sections[key].notes, key

    at_risk = pd.read_parquet(scored.out_dir / "at_risk.parquet")
    tiers = {r["tier"]: int(r["customers"]) for r in page.sections["at_risk"].rows if "tier" in r}
    assert tiers == at_risk.risk_tier.value_counts().to_dict()
    assert sum(int(r["customers"]) for r in page.sections["at_risk"].rows if "family" in r) == len(at_risk)
    actions = {r["action"]: int(r["customers"]) for r in page.sections["at_risk"].rows if "action" in r}
    assert actions == at_risk.suggested_action.value_counts().to_dict()

    run = MlflowClient(tracking_uri=cfg.tracking_uri).get_run(training.run_id)
    metrics = {r["metric"]: float(r["value"]) for r in page.sections["model"].rows}
    assert metrics["roc_auc"] == pytest.approx(run.data.metrics["test_model_roc_auc"])
    assert metrics["top_decile_lift"] == pytest.approx(run.data.metrics["test_model_top_decile_lift"])
    assert page.sections["model"].charts == 2  # gains/lift and calibration, from the run

    psi = json.loads((scored.out_dir / MANIFEST_FILE).read_text())["checks"]["drift"]["psi"]
    for row in page.sections["drift"].rows:
        assert float(row["value"]) == pytest.approx(psi[row["feature"]])

    kpis, _ = compute_kpis(cfg, validated_source(cfg, None))
    latest = kpis[kpis.segment == ALL].iloc[-1]
    shown = {r["kpi"]: r["value"] for r in page.sections["kpis"].rows}
    assert float(shown["churn_rate_pct"]) == pytest.approx(latest.churn_rate_pct)
    assert int(float(shown["lost_customers"])) == latest.lost_customers

    settings = cfg.model_dump(mode="json")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(settings))
    args = ["report", "-c", str(tmp_path / "config.yaml"), "--as-of", str(scored.as_of)]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    text = " ".join(cli.output.split())  # rich wraps to the terminal's width
    assert f"Written {result.path}" in text and "filled" in text and "no campaigns table" in text
    missing = CliRunner().invoke(app, [*args[:3], "--as-of", str(scored.as_of - dt.timedelta(days=1))])
    assert missing.exit_code == OutputMissingError.exit_code and "churn score --as-of" in missing.output


@pytest.mark.slow
def test_campaigns_run_on_an_earlier_list_are_measured_in_its_report(trained, company, tmp_path):
    """A list scored 40 days before the data ends, its treatment and control groups recorded as a campaign the
    next day: the report of that list measures it, with the list's group sizes."""
    from churn_pipeline.stages.score import run_scoring

    cfg, _ = trained
    data = tmp_path / "data"
    shutil.copytree(company.data_dir, data)
    cfg = _own_workdir(cfg, tmp_path / "work", data=cfg.data.model_copy(update={"source": data}))
    end = pd.to_datetime(pd.read_parquet(data / "events.parquet", columns=["ts"]).ts).max().date()
    as_of = end - dt.timedelta(days=40)
    scored = run_scoring(cfg, as_of)
    listed = scored.at_risk
    campaigns = pd.DataFrame(
        {
            "customer_id": listed.customer_id,
            "ts": pd.Timestamp(as_of + dt.timedelta(days=1)) + pd.Timedelta(hours=10),
            "campaign_id": f"list-{as_of}",
            "group": listed.group,
            "risk_tier": listed.risk_tier,
        }
    )
    campaigns.to_parquet(data / "campaigns.parquet", index=False)
    result = run_report(cfg, as_of)
    assert {s.key for s in result.sections if s.filled} >= {"at_risk", "campaigns"}
    page = ReportPage(result.path.read_text(encoding="utf-8"))
    (row,) = page.sections["campaigns"].rows
    assert row["campaign"] == f"list-{as_of}"
    assert int(row["treated"]) == (listed.group == TREATMENT).sum()
    assert int(row["control"]) == (listed.group == CONTROL).sum()
    assert score_dir(cfg.workdir, as_of).is_dir()
