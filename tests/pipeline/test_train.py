"""The training and evaluation stages and their commands, on a real local SQLite MLflow store."""

import json
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

import churn_pipeline.stages.train as stage
from churn_pipeline.cli import app
from churn_pipeline.core.config import Config, LightGBMConfig, ModelConfig, TuningConfig
from churn_pipeline.models import evaluate
from churn_pipeline.models.registry import load_model
from tests.models.synthetic import make_training_set

PLOTS = {
    "roc.png", "precision_recall.png", "gains_lift.png", "calibration.png", "feature_importance.png",
    "contribution_summary.png", "profit_curve.png", "learning_curve.png",
}  # fmt: skip
METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "top_decile_lift", "ece", "precision_at_list")
# small and fast: few trees, two Optuna trials
FAST = ModelConfig(lightgbm=LightGBMConfig(n_estimators=80), tuning=TuningConfig(trials=2))


@pytest.fixture(scope="module")
def synthetic():
    """With the columns the event baselines read (days since the last event, BG/NBD's probability alive)."""
    ts = make_training_set(n_customers=1200, snapshots=4, seed=31)
    days = ts.frame["days_since_last_login"]
    ts.frame["days_since_last_event"] = days
    ts.frame["btyd_p_alive"] = np.exp(-days.fillna(90) / 30)
    return ts


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> str:
    """An initialised, empty SQLite MLflow store; copying it saves each test the schema migrations."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return str(path)


@pytest.fixture
def workdir(tmp_path, empty_store):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(empty_store, work / "mlflow.db")
    return work


@pytest.fixture
def use_set(monkeypatch):
    """Make the stage train on a given synthetic set instead of building one from data."""

    def _use(ts):
        monkeypatch.setattr(stage, "_training_set", lambda cfg, progress: ts)

    return _use


def test_training_run_logs_everything_registers_and_gates(tmp_path, workdir, synthetic, use_set):
    use_set(synthetic)
    # the registered model is exactly the one the test metrics describe
    cfg = Config(workdir=workdir, model=FAST.model_copy(update={"final_fit": "development"}))
    result = stage.run_training(cfg)

    assert result.model_version == "1" and result.decision.promoted
    assert result.tracking_uri == f"sqlite:///{(tmp_path / 'work' / 'mlflow.db').resolve()}"
    client = MlflowClient(result.tracking_uri, result.tracking_uri)
    run = client.get_run(result.run_id)
    m, params, tags = run.data.metrics, run.data.params, run.data.tags
    # every candidate and baseline, on validation and on test, under split-prefixed names
    for name in ("lightgbm", "logistic", "blend"):
        for metric in METRICS:
            assert f"valid_{name}_{metric}" in m and f"test_{name}_{metric}" in m
    for metric in METRICS:
        for name in ("model", "recency", "btyd_p_alive"):
            assert f"test_{name}_{metric}" in m
    # recency and 1 - p_alive rank the same customers the same way here: same ROC-AUC
    assert m["test_recency_roc_auc"] == pytest.approx(m["test_btyd_p_alive_roc_auc"], abs=0.02)
    assert m["test_recency_roc_auc"] > 0.6
    assert not any(k.startswith(("lgbm_", "baseline_")) for k in m)
    chosen = result.chosen
    assert chosen in ("lightgbm", "logistic", "blend")
    assert m["test_model_roc_auc"] == pytest.approx(result.evaluation.metrics[chosen]["roc_auc"])
    assert m[f"test_{chosen}_pr_auc"] == m["test_model_pr_auc"]
    # the chosen candidate is the best on validation by the promotion metric, and the run says why
    best = max(
        ("lightgbm", "logistic", "blend"),
        key=lambda n: (m[f"valid_{n}_pr_auc"], -["lightgbm", "logistic", "blend"].index(n)),
    )
    assert chosen == best
    assert tags["candidate.chosen"] == chosen and "out-of-fold pr_auc" in tags["candidate.reason"]
    assert "oracle_roc_auc" not in m and "test_oracle_roc_auc" not in m  # no oracle configured
    assert params["model.lightgbm.max_depth"] == "6" and params["data.fingerprint"] == "data-31"
    assert "out-of-time" in params["split.strategy"]
    assert tags["registry.alias"] == "champion"
    # the training set is the run's dataset input
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].tags[0].value == "training"
    assert inputs[0].dataset.digest == synthetic.manifest.fingerprint[:36]
    # the learning curve, also as a metric history
    assert len(client.get_metric_history(result.run_id, "valid_lightgbm_curve_logloss")) > 1

    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "features.json", "plots", "evaluation", "training_set"} <= artifacts
    assert {a.path.split("/")[-1] for a in client.list_artifacts(result.run_id, "plots")} == PLOTS
    local = client.download_artifacts(result.run_id, "features.json", str(tmp_path))
    with open(local) as fh:
        features = json.load(fh)
    assert features["features"] == list(synthetic.manifest.features)
    # artifacts live next to the store, not in the current directory
    assert (tmp_path / "work" / "mlartifacts").is_dir()

    # the registered champion scores exactly like the model evaluated in the run
    model, version = load_model(result.tracking_uri, cfg.tracking.registered_model)
    test = synthetic.frame[
        pd.to_datetime(synthetic.frame["snapshot_date"]) == synthetic.frame["snapshot_date"].max()
    ]
    p = model.predict(None, test)
    assert version == "1"
    assert evaluate.roc_auc(test["label"], p) == pytest.approx(m["test_model_roc_auc"])
    assert model.candidate == chosen and model.metadata["candidate"] == chosen
    assert model.metadata["optimal_list_pct"] == result.optimal_list_pct
    # the list share is chosen per customer on the validation snapshots, and the test only reports its profit
    valid_dates = set(pd.to_datetime(model.metadata["valid_snapshots"]))
    # every validation-snapshot row (not only the customers held out of the fit): what the model will score
    n_valid = int(pd.to_datetime(synthetic.frame["snapshot_date"]).isin(valid_dates).sum())
    contacted = result.optimal_list_pct * n_valid / 100
    assert contacted == pytest.approx(round(contacted)) and 1 <= round(contacted) <= n_valid
    assert model.metadata["optimal_list_origin"].endswith(f"of {n_valid:,} validation customers")
    assert m["list_pct"] == pytest.approx(result.optimal_list_pct)
    assert m["test_model_profit_at_list_pct"] == pytest.approx(
        evaluate.profit_at_share(test["label"], p, cfg.evaluation, result.optimal_list_pct)
    )
    assert model.metadata["data_fingerprint"] == "data-31" and model.metadata["run_id"] == result.run_id
    assert set(model.reference["features"]) == set(synthetic.manifest.features)
    # each feature's drift between the first and the last labelled snapshot, for the scoring gate
    dates = sorted(pd.to_datetime(synthetic.frame["snapshot_date"]).unique())
    assert model.reference["trend_dates"] == [dates[0].date().isoformat(), dates[-1].date().isoformat()]
    assert set(model.reference["trend_psi"]) == set(synthetic.manifest.features)
    assert all(v >= 0 for v in model.reference["trend_psi"].values())
    pyfunc = mlflow.pyfunc.load_model(f"models:/{cfg.tracking.registered_model}/1")
    assert np.array_equal(np.asarray(pyfunc.predict(model.input_frame(test))), p)


@pytest.mark.slow  # two full trainings and an evaluation (~17 s)
def test_a_worse_model_stays_challenger_and_evaluate_scores_the_champion(workdir, synthetic, use_set):
    cfg = Config(workdir=workdir, model=FAST.model_copy(update={"final_fit": "development"}))
    use_set(synthetic)
    first = stage.run_training(cfg)

    # same data, training labels shuffled: genuinely worse on the same test snapshots
    frame = synthetic.frame.copy()
    latest = frame["snapshot_date"] >= sorted(frame["snapshot_date"].unique())[-2]
    rng = np.random.default_rng(0)
    frame.loc[~latest, "label"] = rng.permutation(frame.loc[~latest, "label"].to_numpy())
    use_set(
        type(synthetic)(frame=frame, manifest=synthetic.manifest, true_probability=synthetic.true_probability)
    )
    second = stage.run_training(cfg)

    assert second.model_version == "2" and not second.decision.promoted
    assert second.decision.champion_version == "1"
    assert second.decision.champion_value == pytest.approx(first.evaluation.metrics[first.chosen]["pr_auc"])
    assert "does not beat the champion v1" in second.decision.reason
    client = MlflowClient(cfg.tracking_uri, cfg.tracking_uri)
    aliases = client.get_registered_model(cfg.tracking.registered_model).aliases
    assert str(aliases["champion"]) == "1" and str(aliases["challenger"]) == "2"

    ev = stage.run_evaluation(cfg)
    assert ev.model_version == "1"
    assert ev.evaluation.metrics["model"]["pr_auc"] == pytest.approx(
        first.evaluation.metrics[first.chosen]["pr_auc"]
    )
    run = client.get_run(ev.run_id)
    assert run.data.tags["stage"] == "evaluate" and run.data.params["model.version"] == "1"
    assert "test_model_pr_auc" in run.data.metrics
    assert ev.warnings == []  # v1 was trained before the test snapshot
    ev2 = stage.run_evaluation(cfg, "2")
    assert ev2.evaluation.metrics["model"]["pr_auc"] == pytest.approx(
        second.evaluation.metrics[second.chosen]["pr_auc"]
    )


def test_a_champion_that_learnt_the_test_snapshot_is_judged_by_its_held_out_figure(
    workdir, synthetic, use_set
):
    use_set(synthetic)
    cfg = Config(workdir=workdir, model=FAST)  # final_fit: all
    first = stage.run_training(cfg)
    held_out = first.evaluation.metrics[first.chosen]["pr_auc"]
    champion, _ = load_model(cfg.tracking_uri, cfg.tracking.registered_model)
    test = synthetic.frame[synthetic.frame["snapshot_date"] == synthetic.frame["snapshot_date"].max()]
    in_sample = evaluate.pr_auc(test["label"], champion.predict(None, test))
    assert in_sample > held_out + 0.01  # re-scoring it there would be in-sample, and flattering

    second = stage.run_training(cfg)  # the same data and seed: the same held-out figure, not better
    assert second.decision.champion_value == pytest.approx(held_out)
    assert "compared with its own held-out test pr_auc" in second.decision.reason
    assert not second.decision.promoted  # equal is not better


def test_the_registered_model_learns_every_labelled_row_with_the_settings_chosen_without_the_test(
    workdir, synthetic, use_set
):
    use_set(synthetic)
    model_cfg = FAST.model_copy(
        update={
            "candidates": ("lightgbm",),
            "lightgbm": FAST.lightgbm.model_copy(update={"subsample": 1.0}),
            "tuning": TuningConfig(trials=0),  # the search would choose a subsample < 1
        }
    )
    result = stage.run_training(Config(workdir=workdir, model=model_cfg))
    model, _ = load_model(result.tracking_uri, "churn-classifier")
    assert model.metadata["final_fit"] == {"kind": "all", "rows": len(synthetic.frame)}
    # without bagging, the first tree's root counts exactly the rows it was fitted on: test rows included
    root = model.booster.dump_model()["tree_info"][0]["tree_structure"]
    assert root["internal_count"] == len(synthetic.frame)
    # with the rounds chosen on the development rows, scaled to the larger set
    dev_rounds = model.metadata["settings"]["n_estimators"]
    assert model.booster.num_trees() == dev_rounds
    assert result.split_sizes["development"] < len(synthetic.frame)
    # it has seen the test snapshot: evaluating it there says the metrics are optimistic
    test_date = str(synthetic.frame["snapshot_date"].max().date())
    assert test_date in model.metadata["train_snapshots"]
    assert any(
        "optimistic" in w for w in stage.run_evaluation(Config(workdir=workdir, model=model_cfg)).warnings
    )


def test_single_snapshot_training_cross_validates_tunes_and_refits(workdir, use_set):
    ts = make_training_set(n_customers=1500, snapshots=1, seed=9)
    use_set(ts)
    model_cfg = FAST.model_copy(update={"calibration": "sigmoid", "cv_folds": 3})
    result = stage.run_training(Config(workdir=workdir, model=model_cfg))
    assert "customer-hash split" in result.strategy and "cross-validation" in result.strategy
    client = MlflowClient(result.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.tags["split.kind"] == "customer_hash"
    assert "out-of-fold pr_auc" in run.data.tags["candidate.reason"]
    # the Optuna search ran its budget and logged its trials
    trials = pd.read_csv(client.download_artifacts(result.run_id, "tuning/lightgbm_trials.csv", str(workdir)))
    assert len(trials) == 2 and result.tuning_trials == 2
    # the refit used every non-test row
    assert run.data.params["split.development_rows"] == str(result.split_sizes["development"])
    assert result.split_sizes["development"] + result.split_sizes["test"] == len(ts.frame)


def test_cli_train_and_evaluate(workdir, synthetic, use_set, tmp_path):
    use_set(synthetic)
    runner = CliRunner()
    out = workdir
    config = tmp_path / "fast.yaml"
    config.write_text("model:\n  lightgbm: {n_estimators: 60}\n  tuning: {trials: 1}\n")
    res = runner.invoke(app, ["train", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    for text in ("lightgbm", "logistic", "blend", "recency", "chosen:", "out-of-fold pr_auc", "ROC-AUC",
                 "PR-AUC", "top-decile lift", "at-risk list: the top", "validation customers", "champion",
                 "no champion yet",
                 "mlflow ui --backend-store-uri sqlite:///"):  # fmt: skip
        assert text in res.output, text

    res = runner.invoke(app, ["evaluate", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "churn-classifier v1" in res.output and "PR-AUC" in res.output
    assert "at-risk list: the top" in res.output and "validation customers" in res.output

    res = runner.invoke(app, ["evaluate", "--out", str(out), "--version", "9"])
    assert res.exit_code == 6
    assert "no version '9'" in res.output and "available versions: [1]" in res.output


def test_cli_evaluate_without_a_store_says_to_train_first(tmp_path):
    res = CliRunner().invoke(app, ["evaluate", "--out", str(tmp_path / "empty")])
    assert res.exit_code == 6 and "churn train" in res.output


@pytest.mark.slow
def test_end_to_end_on_the_simulated_company(company, tmp_path):
    """Real training set from simulated data, oracle metrics, calibration against the true probabilities."""
    from churn_pipeline.models.split import held_out_test
    from churn_pipeline.simulator.oracle import oracle_for, snapshot_probabilities
    from churn_pipeline.stages.training_set import load_or_build_training_set

    cfg = company.config_in(tmp_path / "work")
    # calibration is checked on the test rows below: the registered model must not have learnt them
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"final_fit": "development"})})
    result = stage.run_training(cfg, oracle=oracle_for(cfg))
    ev = result.evaluation
    assert {"lightgbm", "logistic", "blend", "recency", "oracle"} <= set(ev.metrics)
    assert result.decision.promoted and result.model_version == "1"
    assert "out-of-time" in result.strategy
    lgbm, oracle = ev.metrics[result.chosen], ev.metrics["oracle"]
    # the model learns something, and cannot beat the simulator's true probabilities by more than noise
    assert lgbm["roc_auc"] > 0.55 and lgbm["top_decile_lift"] > 1.2
    assert 0.5 < ev.ratios[f"{result.chosen}_to_oracle"]["roc_auc"] < 1.05
    run = MlflowClient(cfg.tracking_uri).get_run(result.run_id)
    assert run.data.metrics["test_oracle_roc_auc"] == pytest.approx(oracle["roc_auc"])
    key = f"{result.chosen}_to_oracle"
    assert run.data.metrics[f"test_{key}_roc_auc"] == pytest.approx(ev.ratios[key]["roc_auc"])

    # calibration: predicted rates match the observed rate and the true churn probabilities
    model, _ = load_model(cfg.tracking_uri, cfg.tracking.registered_model)
    test, _ = held_out_test(load_or_build_training_set(cfg, progress=False).frame, cfg.model)
    p = model.predict(None, test)
    truth, _ = snapshot_probabilities(cfg, test)
    y = test["label"].to_numpy()
    assert abs(p.mean() - y.mean()) < 0.01
    assert abs(p.mean() - truth.mean()) < 0.015
    bins = np.array_split(np.argsort(p, kind="stable"), 5)
    gaps = [abs(p[b].mean() - truth[b].mean()) for b in bins]
    # 0.0197 with float64 matrices, 0.0217 with the float32 ones (a better model: test ROC-AUC 0.818 -> 0.827):
    # the top fifth holds few customers of this small company, its gap moves with any change of the model
    assert np.mean(gaps) < 0.025
    raw = model.predict_raw(test)
    assert evaluate.expected_calibration_error(y, p) < max(0.02, evaluate.expected_calibration_error(y, raw))

    # the champion evaluates to the same numbers in its own run
    again = stage.run_evaluation(cfg, oracle=oracle_for(cfg))
    assert again.evaluation.metrics["model"]["roc_auc"] == pytest.approx(lgbm["roc_auc"])
    assert again.evaluation.metrics["oracle"]["roc_auc"] == pytest.approx(oracle["roc_auc"])
