"""`churn campaign-report` and `churn train-uplift` on a simulated company that ran campaigns: the measured
saves against the simulator's true effect, campaigns still inside their horizon, the uplift model judged out
of time and registered, MLflow, and the commands' errors."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.config import Config, LabelConfig, SimulationConfig
from churn_pipeline.models.campaign_effect import ALL
from churn_pipeline.simulator.company import simulate_company
from churn_pipeline.stages.campaigns import run_campaign_report

pytestmark = pytest.mark.slow  # an 8,000-customer company with 13 campaigns (~15 s of CPU)
runner = CliRunner()
# Campaigns act for 4 weeks: churn is measured over the same 28 days (the label horizon).
SIM = SimulationConfig(
    customers=8_000,
    months=15,
    seed=3,
    campaigns={"every_weeks": 4, "first_month": 4, "target_pct": 8, "control_pct": 50},
)


@pytest.fixture(scope="module")
def company(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign_company")
    simulate_company(SIM, root / "data", root / "truth")
    return root


def config(root, workdir, horizon: int = 28) -> Config:
    return Config(
        workdir=workdir,
        data={"source": root / "data"},
        label=LabelConfig(kind="cancellation", horizon_days=horizon),
        simulation=SIM,
    )


def true_saves(root) -> pd.Series:
    """Per campaign: the expected customers saved among the treated, from both potential outcomes."""
    t = pd.read_parquet(root / "truth" / "campaigns.parquet")
    t = t[t.group == "treatment"]
    return (t.p_churn_not_contacted - t.p_churn_contacted).groupby(t.campaign_id.astype(str)).sum()


def test_the_report_recovers_the_true_saves_within_its_intervals(company, tmp_path):
    report = run_campaign_report(config(company, tmp_path / "work"))
    truth = true_saves(company)
    totals = report.effects[(report.effects.risk_tier == ALL) & (report.effects.campaign_id != ALL)]
    assert set(totals.campaign_id) == set(truth.index) and report.in_progress == ()
    covered = [(r.saved_low <= truth[r.campaign_id] <= r.saved_high) for r in totals.itertuples()]
    assert sum(covered) >= 0.8 * len(covered)  # 95% intervals: most campaigns, not necessarily all
    overall = report.overall
    assert overall.saved_low <= truth.sum() <= overall.saved_high
    assert overall.uplift_high - overall.uplift_low < 0.05  # precise to a few points of churn rate
    assert overall.treated + overall.control + report.left_before_contact == len(
        pd.read_parquet(company / "data" / "campaigns.parquet")
    )
    written = pd.read_parquet(report.paths[0])
    pd.testing.assert_frame_equal(written, report.effects)
    run = MlflowClient(tracking_uri=config(company, tmp_path / "work").tracking_uri).get_run(report.run_id)
    assert run.data.metrics["all.saved"] == pytest.approx(overall.saved)
    assert run.data.tags["kind"] == "campaign-report"


def test_campaigns_whose_horizon_is_not_over_are_listed_not_measured(company, tmp_path):
    report = run_campaign_report(config(company, tmp_path / "work", horizon=60))
    last = max(true_saves(company).index)
    assert last in report.in_progress
    assert last not in set(report.effects.campaign_id)


def test_cli_prints_the_table_and_fails_clearly_without_a_campaigns_table(company, tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump({"workdir": str(tmp_path / "work"), "label": {"horizon_days": 28}}))
    ok = runner.invoke(app, ["campaign-report", "--config", str(cfg_path), "--data", str(company / "data")])
    assert ok.exit_code == 0, ok.output
    text = " ".join(ok.output.split())  # rich wraps to the terminal's width
    assert "customers saved" in text and "Campaigns measured 28 days after" in text
    written = pd.read_csv(tmp_path / "work" / "campaigns" / "campaign_report.csv")
    assert set(written.campaign_id) == {*true_saves(company).index, ALL}

    bare = tmp_path / "bare"
    shutil.copytree(company / "data", bare)
    (bare / "campaigns.parquet").unlink()
    failed = runner.invoke(app, ["campaign-report", "--config", str(cfg_path), "--data", str(bare)])
    assert failed.exit_code == 2
    assert "no campaigns table" in failed.output and "campaigns.parquet" in failed.output

    uplift = runner.invoke(app, ["train-uplift", "--config", str(cfg_path), "--data", str(company / "data")])
    assert uplift.exit_code == 0, uplift.output
    text = " ".join(uplift.output.split())
    assert "Registered uplift model v1" in text and "by risk" in text and "X-learner trained on" in text
    no_campaigns = runner.invoke(app, ["train-uplift", "--config", str(cfg_path), "--data", str(bare)])
    assert no_campaigns.exit_code == 2 and "no campaigns table" in no_campaigns.output


# ------------------------------------------------------------------------------------------------ uplift


def test_train_uplift_judges_out_of_time_registers_and_loads_back(company, tmp_path):
    from churn_pipeline.core.artifacts import uplift_model_name
    from churn_pipeline.models.registry import load_model
    from churn_pipeline.models.uplift import UpliftModel
    from churn_pipeline.stages.uplift import run_uplift_training

    cfg = config(company, tmp_path / "work")
    result = run_uplift_training(cfg)
    ts, ev = result.training_set, result.evaluation
    assert (
        ev.test_campaigns == ts.campaigns[-len(ev.test_campaigns) :]
    )  # the latest campaigns, never trained on
    assert set(ts.frame.treated) == {0, 1} and ts.frame.label.isin([0, 1]).all()
    assert "customer_id" not in ts.feature_names and "treated" not in ts.feature_names
    assert result.version == "1" and result.promoted == (ev.by_uplift.coefficient() > 0)
    run = MlflowClient(tracking_uri=cfg.tracking_uri).get_run(result.run_id)
    assert run.data.metrics["test_qini_uplift"] == pytest.approx(ev.by_uplift.coefficient())
    assert "test_saved_top20pct_by_risk" in run.data.metrics and run.data.tags["kind"] == "uplift"
    loaded, version = load_model(
        cfg.tracking_uri, uplift_model_name(cfg.tracking.registered_model), "1", kind=UpliftModel
    )
    rows = ts.frame.head(200)
    np.testing.assert_allclose(
        loaded.predict(None, rows), result.model.predict(None, rows), rtol=0, atol=1e-12
    )
    # Point in time: every target's features are as of the day before its campaign's first contact.
    contacts = pd.read_parquet(company / "data" / "campaigns.parquet")
    first = pd.to_datetime(contacts.groupby(contacts.campaign_id.astype(str)).ts.min()).dt.normalize()
    expected = (first - pd.Timedelta(days=1)).dt.date
    assert (ts.frame.as_of == ts.frame.campaign_id.map(expected)).all()


def test_train_uplift_needs_enough_measured_campaigns(company, tmp_path):
    from churn_pipeline.core.errors import ConfigError
    from churn_pipeline.stages.uplift import run_uplift_training

    with pytest.raises(ConfigError, match=r"campaign\(s\) measured so far .* needs at least 3"):
        run_uplift_training(config(company, tmp_path / "work", horizon=300))


def test_scoring_ranked_by_saved_value_lists_who_a_contact_saves(company, tmp_path):
    from churn_pipeline.core.artifacts import uplift_model_name
    from churn_pipeline.core.config import ScoringConfig
    from churn_pipeline.models.registry import load_model
    from churn_pipeline.models.uplift import UpliftModel
    from churn_pipeline.stages.score import run_scoring, scoring_features, validated_source
    from churn_pipeline.stages.train import run_training
    from churn_pipeline.stages.uplift import run_uplift_training

    base = config(company, tmp_path / "work")
    cfg = base.model_copy(
        update={"scoring": ScoringConfig(rank_by="saved_value", list_size=20.0, value_column="monthly_fee")}
    )
    run_training(cfg)
    uplift = run_uplift_training(cfg)
    if not uplift.promoted:  # a small company's Qini may not beat random: promote it by hand, as a user may
        MlflowClient(tracking_uri=cfg.tracking_uri).set_registered_model_alias(
            uplift_model_name(cfg.tracking.registered_model), "champion", uplift.version
        )
    result = run_scoring(cfg)
    listed, scores = result.at_risk, result.scores
    assert len(listed) > 0 and (listed["expected_saved_value"] > 0).all()
    assert listed["expected_saved_value"].is_monotonic_decreasing and listed["rank"].tolist() == list(
        range(1, len(listed) + 1)
    )
    assert scores["expected_saved_value"].fillna(-np.inf).is_monotonic_decreasing
    # the uplift published is the uplift champion's, and the saved value is uplift x 12 months of fee
    model, version = load_model(
        cfg.tracking_uri, uplift_model_name(cfg.tracking.registered_model), None, kind=UpliftModel
    )
    features = scoring_features(cfg, validated_source(cfg, result.as_of), result.as_of).set_index(
        "customer_id"
    )
    expected = model.predict(None, features.loc[listed["customer_id"]].reset_index())
    np.testing.assert_allclose(listed["uplift"], expected, rtol=0, atol=1e-12)
    fee = pd.read_parquet(company / "data" / "customers.parquet").set_index("customer_id")["monthly_fee"]
    np.testing.assert_allclose(
        listed["expected_saved_value"], expected * 12 * fee.loc[listed["customer_id"]].to_numpy()
    )
    manifest = result.manifest.to_dict()
    assert manifest["ranked_by"] == "saved_value" and manifest["uplift_model"]["version"] == version
    from churn_pipeline.stages.report import run_report

    page = run_report(cfg).path.read_text()  # the report says how the list was ranked, and what it saves
    assert f"{uplift_model_name(cfg.tracking.registered_model)} v{version}" in page
    assert f"{listed['expected_saved_value'].sum():,.0f} expected to be saved" in page
    # a list ranked by risk on the same data is another list: riskiest first, whatever a contact would do
    by_risk = run_scoring(base.model_copy(update={"workdir": tmp_path / "work"}))
    assert by_risk.at_risk["expected_saved_value"].isna().all() and by_risk.manifest.ranked_by == "risk"
    assert by_risk.at_risk["churn_probability"].is_monotonic_decreasing
