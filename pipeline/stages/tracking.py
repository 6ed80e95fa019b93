"""The MLflow side of `churn train` and `churn evaluate`: the experiment, what a run logs (tags, params,
metrics, artifacts, plots), the registered version and the promotion gate.

Writes only: every figure logged here was computed by the stage (`stages.train`, `stages.evaluation`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.entities import Metric
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from churn_pipeline.core.artifacts import uplift_model_name
from churn_pipeline.core.config import Config, public_config
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.models import plots
from churn_pipeline.models.candidates import Developed
from churn_pipeline.models.churn_model import ChurnModel
from churn_pipeline.models.registry import (
    CHAMPION,
    GateDecision,
    log_churn_model,
    promotion_gate,
    register,
    sqlite_path,
    use_tracking,
)
from churn_pipeline.models.split import Split
from churn_pipeline.models.training import Trained
from churn_pipeline.stages.evaluation import MODEL, Evaluation, Scored
from churn_pipeline.stages.training_set import TrainingSetManifest

if TYPE_CHECKING:
    from churn_pipeline.models.uplift import UpliftModel
    from churn_pipeline.stages.campaigns import CampaignReport
    from churn_pipeline.stages.uplift import UpliftEvaluation, UpliftTrainingSet

_SUMMARY_ROWS = 3000  # customers in the contribution summary plot


# -- the experiment and its runs ----------------------------------------------------------------------------
def experiment_id(cfg: Config) -> str:
    """Point MLflow at the configured store and return the experiment id (created on first use; with a SQLite
    store its artifacts go next to the database, not into the current directory)."""
    uri = cfg.tracking_uri
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    use_tracking(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        location = (db.parent / "mlartifacts").resolve().as_uri() if db is not None else None
        return client.create_experiment(cfg.tracking.experiment, artifact_location=location)
    if exp.lifecycle_stage == "deleted":
        raise ConfigError(
            f"MLflow experiment '{cfg.tracking.experiment}' is deleted in {uri}: restore it "
            f"(`mlflow experiments restore --experiment-id {exp.experiment_id}`) or set tracking.experiment"
        )
    return exp.experiment_id


def start_run(experiment: str, name: str) -> mlflow.ActiveRun:
    """A new run of `experiment` named `name` plus the time (UTC), active until its `with` block ends."""
    return mlflow.start_run(
        experiment_id=experiment, run_name=f"{name} {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
    )


def flatten_config(cfg: Config) -> dict[str, str]:
    """Config as dotted MLflow params (`model.lightgbm.num_leaves` -> "31"), secrets redacted."""
    out: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list | tuple | dict):
            out[prefix] = json.dumps(value, default=str)
        else:
            out[prefix] = str(value)

    walk("", public_config(cfg))
    return out


# -- churn train --------------------------------------------------------------------------------------------
def log_training(
    cfg: Config,
    manifest: TrainingSetManifest,
    split: Split,
    trained: Trained,
    final_rows: int,
    scored: Scored,
    ev: Evaluation,
    model: ChurnModel,
) -> None:
    """Everything a training run shows besides the model: tags, params, the training input, the config, the
    training set's manifest, the features, the split, the candidates' selection, test metrics and plots."""
    _log_training_params(cfg, manifest, split, trained, final_rows)
    _log_training_input(split.development, manifest)
    mlflow.log_text(yaml.safe_dump(public_config(cfg), sort_keys=False), "config.yaml")
    mlflow.log_dict(manifest.to_json(), "training_set/manifest.json")
    mlflow.log_dict(
        {
            "features": list(manifest.features),
            "categorical_features": list(manifest.categorical_features),
            "categories": trained.categories,
        },
        "features.json",
    )
    mlflow.log_text(split.strategy + "\n", "split.txt")
    _log_selection(trained)
    _log_evaluation(ev)
    _log_figures(scored, ev, model, split.test, cfg.model.seed)


def _log_training_params(
    cfg: Config, manifest: TrainingSetManifest, split: Split, trained: Trained, final_rows: int
) -> None:
    sel = trained.selection
    mlflow.set_tags(
        {
            "stage": "train",
            "split.kind": split.kind,
            "data.fingerprint": manifest.data_fingerprint,
            "training_set.fingerprint": manifest.fingerprint,
            "candidate.chosen": sel.chosen,
            "candidate.reason": sel.reason,
        }
    )
    mlflow.log_params(flatten_config(cfg))
    for name, settings in sel.refit_settings.items():
        mlflow.log_params(
            {f"{name}.{k}": json.dumps(v) if isinstance(v, list | dict) else v for k, v in settings.items()}
        )
    mlflow.log_params(
        {
            "candidate.chosen": sel.chosen,
            "split.strategy": split.strategy,
            "split.train_rows": len(split.train),
            "split.valid_rows": len(split.valid),
            "split.test_rows": len(split.test),
            "split.development_rows": trained.development_rows,
            "final_fit.rows": final_rows,
            "split.folds": len(split.folds or []),
            "split.test_snapshots": ",".join(str(d) for d in split.test_snapshots),
            "data.fingerprint": manifest.data_fingerprint,
            "training_set.fingerprint": manifest.fingerprint,
            "n_features": len(manifest.features),
        }
    )


def _log_training_input(development: pd.DataFrame, manifest: TrainingSetManifest) -> None:
    """The development rows as the run's training dataset: schema, row count and the training set's
    fingerprint as digest (MLflow stores no copy of the rows and, given the digest, does not hash them)."""
    dataset = mlflow.data.from_pandas(
        development,
        name=f"training_set-{manifest.fingerprint}",
        targets="label",
        digest=manifest.fingerprint[:36] if manifest.fingerprint else None,
    )
    # MLflow infers the schema from every row (11 s for the demo's 100k rows); the columns' types are the
    # same in the first rows. `schema` is a cached property: setting it skips the full scan.
    dataset.__dict__["schema"] = infer_signature(development.head(1000)).inputs
    mlflow.log_input(dataset, context="training")


def _log_selection(trained: Trained) -> None:
    """Validation metrics of every candidate (`valid_<candidate>_<metric>`), each search's trials, the
    refit settings and the LightGBM learning curves."""
    sel = trained.selection
    flat = {}
    for name, m in sel.valid_metrics.items():
        flat.update({f"valid_{name}_{k}": v for k, v in m.items() if np.isfinite(v)})
    mlflow.log_metrics(flat)
    for name, dev in sel.developed.items():
        if dev.trials is not None:
            mlflow.log_text(dev.trials.to_csv(index=False), f"tuning/{name}_trials.csv")
    mlflow.log_dict(
        {
            "chosen": sel.chosen,
            "reason": sel.reason,
            "listed": sel.listed,
            "notes": {n: d.note for n, d in sel.developed.items()},
            "settings": {n: d.settings for n, d in sel.developed.items()},
            "refit_settings": sel.refit_settings,
            "valid_metrics": sel.valid_metrics,
        },
        "selection.json",
    )
    lgbm = sel.developed.get("lightgbm")
    if lgbm is not None:
        _log_learning_curves(lgbm)


def _log_learning_curves(lgbm: Developed) -> None:
    """The folds' LightGBM validation log loss per iteration: a plot, and the first fold's as a metric."""
    curves = [f.curve for f in lgbm.fold_fits if getattr(f, "curve", None)]
    if not curves:
        return
    mlflow.log_figure(plots.learning_curve_figure(curves), "plots/learning_curve.png")
    now = int(time.time() * 1000)
    history = [Metric("valid_lightgbm_curve_logloss", float(v), now, i + 1) for i, v in enumerate(curves[0])]
    run_id = mlflow.active_run().info.run_id
    for i in range(0, len(history), 1000):  # one write per 1000 points, not one per iteration
        MlflowClient().log_batch(run_id, metrics=history[i : i + 1000])


def register_model(
    cfg: Config, model: ChurnModel, example: pd.DataFrame, run_id: str, trained: Trained
) -> str:
    """Log `model` in the active run (its input example from `example`), register it as a new version
    tagged with its candidate and why it was chosen; the version."""
    sel = trained.selection
    info = log_churn_model(model, example)
    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    name = cfg.tracking.registered_model
    version = register(client, info.model_uri, name, run_id)
    client.set_model_version_tag(name, version, "candidate", sel.chosen)
    client.set_model_version_tag(name, version, "candidate.reason", sel.reason)
    return version


def promote(cfg: Config, version: str, ev: Evaluation, test: pd.DataFrame) -> GateDecision:
    """The promotion gate (`models.registry.promotion_gate`) on the configured metric of the registered
    scorer; its decision is tagged on the run."""
    metric = cfg.model.promotion_metric
    decision = promotion_gate(
        cfg.tracking_uri,
        cfg.tracking.registered_model,
        version,
        metric,
        ev.metrics[ev.chosen][metric],
        test,
        cfg.evaluation.list_size_pct,
    )
    mlflow.set_tags(
        {
            "registry.model": cfg.tracking.registered_model,
            "registry.version": version,
            "registry.alias": decision.alias,
            "registry.reason": decision.reason,
        }
    )
    return decision


# -- churn evaluate -----------------------------------------------------------------------------------------
def log_evaluation_run(
    cfg: Config,
    version: str,
    manifest: TrainingSetManifest,
    test: pd.DataFrame,
    scored: Scored,
    ev: Evaluation,
    model: ChurnModel,
    warnings: list[str],
) -> None:
    """What an evaluation run shows: the version and the test rows, test metrics, plots and warnings."""
    mlflow.set_tags(
        {
            "stage": "evaluate",
            "registry.model": cfg.tracking.registered_model,
            "registry.version": version,
            "data.fingerprint": manifest.data_fingerprint,
        }
    )
    mlflow.log_params(
        {
            "model.version": version,
            "test_snapshots": ",".join(str(d) for d in ev.test_snapshots),
            "test_rows": len(test),
            "evaluation.list_size_pct": cfg.evaluation.list_size_pct,
            "evaluation.customer_value": cfg.evaluation.customer_value,
            "evaluation.offer_cost": cfg.evaluation.offer_cost,
            "evaluation.offer_acceptance": cfg.evaluation.offer_acceptance,
        }
    )
    _log_evaluation(ev)
    _log_figures(scored, ev, model, test, cfg.model.seed)
    if warnings:
        mlflow.set_tag("warnings", " | ".join(warnings))


# -- both ---------------------------------------------------------------------------------------------------
def _log_evaluation(ev: Evaluation) -> None:
    """Test metrics as `test_<scorer>_<metric>` (and `test_model_<metric>` for the registered model)."""
    flat: dict[str, float] = {}
    named = dict(ev.metrics)
    if ev.chosen != MODEL:
        named[MODEL] = ev.metrics[ev.chosen]
    for k, m in named.items():
        flat.update({f"test_{k}_{name}": v for name, v in m.items() if np.isfinite(v)})
        curve = ev.profit[ev.chosen if k == MODEL else k]
        flat[f"test_{k}_profit_best_k_pct"] = curve.best_k_pct
        flat[f"test_{k}_profit_best"] = curve.best_profit
    for k, r in ev.ratios.items():
        flat.update({f"test_{k}_{name}": v for name, v in r.items()})
    if ev.list_pct is not None:
        flat["list_pct"] = ev.list_pct
        flat["test_model_profit_at_list_pct"] = ev.list_profit
    mlflow.log_metrics(flat)
    mlflow.log_dict(
        {
            "chosen": ev.chosen,
            "metrics": ev.metrics,
            "ratios": ev.ratios,
            "profit_best_k_pct": {k: c.best_k_pct for k, c in ev.profit.items()},
            "profit_best": {k: c.best_profit for k, c in ev.profit.items()},
            "test_snapshots": [str(d) for d in ev.test_snapshots],
            "rows": ev.rows,
            "oracle_note": ev.oracle_note,
            "list_pct": ev.list_pct,
            "list_pct_origin": ev.list_pct_origin,
            "profit_at_list_pct": ev.list_profit,
        },
        "evaluation/metrics.json",
    )
    profit = pd.concat([c.table.assign(scorer=k) for k, c in ev.profit.items()], ignore_index=True)
    mlflow.log_text(profit.to_csv(index=False), "evaluation/profit_curve.csv")


def _log_figures(scored: Scored, ev: Evaluation, model: ChurnModel, test: pd.DataFrame, seed: int) -> None:
    """The curves of every scorer, the profit curve, and the model's feature importance and contributions
    on a sample of the test rows."""
    curves = {ev.display_name(k): (scored.labels, p) for k, p in scored.scores.items()}
    figures = {
        "roc.png": plots.roc_figure(curves),
        "precision_recall.png": plots.pr_figure(curves),
        "gains_lift.png": plots.gains_figure(curves),
        "calibration.png": plots.calibration_figure(
            {
                ev.display_name(k): v
                for k, v in zip(scored.scores, curves.values(), strict=True)
                if k not in ev.baselines
            }
        ),
        "profit_curve.png": plots.profit_figure({ev.display_name(k): c for k, c in ev.profit.items()}),
    }
    sample = test.sample(n=min(_SUMMARY_ROWS, len(test)), random_state=seed) if len(test) else test
    contrib = model.contributions(sample)
    importance = model.estimator.importance(contrib)
    figures["feature_importance.png"] = plots.importance_figure(importance)
    figures["contribution_summary.png"] = plots.contribution_summary_figure(
        contrib, sample[model.feature_names], seed=seed
    )
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}")
    mlflow.log_text(importance.to_csv(index=False), "evaluation/feature_importance.csv")


# -- campaign reports ---------------------------------------------------------------------------------------
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


def log_campaign_report(cfg: Config, report: CampaignReport) -> CampaignReport:
    """One run per `churn campaign-report`: per campaign (tier `all`) and overall, the customers saved with
    their interval, the uplift, contact conversion and ROI; the full table as an artifact. Returns the report
    with the run id."""
    experiment = experiment_id(cfg)
    with start_run(experiment, f"campaign-report {report.data_end_date}") as run:
        mlflow.set_tags({"kind": "campaign-report", "data_end_date": str(report.data_end_date)})
        mlflow.log_params({"label.kind": cfg.label.kind, "horizon_days": report.horizon_days,
                           "confidence": report.confidence, "evaluation.offer_cost": cfg.evaluation.offer_cost})  # fmt: skip
        totals = report.effects[report.effects.risk_tier == "all"]
        metrics = {}
        for row in totals.itertuples(index=False):  # one row per campaign, not per customer
            name = _METRIC_NAME.sub("_", str(row.campaign_id))
            for key in (
                "saved",
                "saved_low",
                "saved_high",
                "uplift",
                "contact_conversion",
                "roi",
                "treated",
                "control",
            ):
                value = float(getattr(row, key))
                if np.isfinite(value):
                    metrics[f"{name}.{key}"] = value
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "campaign_report.csv"
            report.effects.to_csv(path, index=False)
            mlflow.log_artifact(str(path))
    return dataclasses.replace(report, run_id=run.info.run_id)


# -- uplift -------------------------------------------------------------------------------------------------
def log_uplift_run(
    cfg: Config,
    ts: UpliftTrainingSet,
    evaluation: UpliftEvaluation,
    model: UpliftModel,
    promoted: bool,
    reason: str,
) -> tuple[str, str]:
    """One run per `churn train-uplift`: the out-of-time Qini figures of both rankings, the curves as a plot,
    the model registered as `<registered_model>-uplift` (alias champion when `promoted`). (version, run id)"""
    import matplotlib.pyplot as plt

    from churn_pipeline.models.uplift import ESTIMATOR_NAMES

    experiment = experiment_id(cfg)
    with start_run(experiment, "train-uplift") as run:
        mlflow.set_tags({"kind": "uplift", "promoted": str(promoted), "reason": reason,
                         "test_campaigns": ", ".join(evaluation.test_campaigns)})  # fmt: skip
        mlflow.log_params({"campaigns": len(ts.campaigns), "rows": len(ts.frame), "test_rows": evaluation.rows,
                           "features": len(ts.feature_names), "learner": f"{ESTIMATOR_NAMES[model.estimator]} on LightGBM"})  # fmt: skip
        mlflow.log_metrics(evaluation.figures())
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, curve in (("by uplift", evaluation.by_uplift), ("by risk", evaluation.by_risk)):
            ax.plot(curve.share, curve.saved, label=label)
        ax.plot([0, 1], [0, evaluation.by_uplift.saved[-1]], "k--", lw=0.8, label="random")
        ax.set(xlabel="share of campaign targets contacted", ylabel="customers saved (Qini)",
               title=f"Out-of-time Qini: {', '.join(evaluation.test_campaigns)}")  # fmt: skip
        ax.legend()
        mlflow.log_figure(fig, "uplift_qini.png")
        plt.close(fig)
        info = log_churn_model(model, ts.frame.head(100))
        client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
        name = uplift_model_name(cfg.tracking.registered_model)
        version = register(client, info.model_uri, name, run.info.run_id,
                           description=f"Uplift ({ESTIMATOR_NAMES[model.estimator]} on LightGBM) of churn-pipeline: churn prevented by a contact.")  # fmt: skip
        client.set_model_version_tag(name, version, "reason", reason)
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, version)
    return version, run.info.run_id
