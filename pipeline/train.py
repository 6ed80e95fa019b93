"""Training and evaluation stages: training set -> split -> LightGBM + baseline -> calibration -> test metrics
-> one MLflow run (params, metrics, plots, pyfunc model) -> registry -> promotion gate.

Wiring only: the computations live in `models/`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from models import evaluate, explain, plots
from models.calibration import fit_calibrator
from models.churn_model import ChurnModel, mlflow_column_type
from models.drift import reference_profile
from models.evaluate import ProfitCurve
from models.registry import (
    GateDecision,
    load_model,
    log_churn_model,
    promotion_gate,
    register,
    sqlite_path,
    use_tracking,
)
from models.split import Split, held_out_test, out_of_time_split
from models.train import (
    LightGBMFit,
    predict_baseline,
    predict_raw,
    train_baseline,
    train_lightgbm,
    tune_lightgbm,
)
from pipeline.config import Config, public_config
from pipeline.errors import ConfigError
from pipeline.progress import Steps

log = logging.getLogger(__name__)

LGBM, BASELINE, ORACLE = "lgbm", "baseline", "oracle"
DISPLAY = {LGBM: "LightGBM", BASELINE: "baseline", ORACLE: "oracle"}
_SUMMARY_ROWS = 3000  # customers in the contribution summary plot


@dataclass
class Evaluation:
    """Test-set metrics and profit curves of each scorer (lgbm, baseline, oracle)."""

    metrics: dict[str, dict[str, float]]
    profit: dict[str, ProfitCurve]
    ratios: dict[str, dict[str, float]]  # "lgbm_to_oracle" -> metric -> ratio
    test_snapshots: list[dt.date]
    rows: int
    oracle_note: str | None = None


@dataclass
class TrainingResult:
    """What `churn train` did: the run, the registered version and the gate's decision, and the metrics."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_name: str
    model_version: str
    decision: GateDecision
    evaluation: Evaluation
    strategy: str
    split_sizes: dict[str, int]
    best_iteration: int
    features: list[str]
    training_set_fingerprint: str
    seconds: float
    tuning_trials: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def optimal_list_pct(self) -> int:
        return self.evaluation.profit[LGBM].best_k_pct


@dataclass
class EvaluationResult:
    """What `churn evaluate` measured for one registered version."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_name: str
    model_version: str
    evaluation: Evaluation
    warnings: list[str]
    seconds: float


# -- helpers ------------------------------------------------------------------------------------------------
def _training_set(cfg: Config, progress: bool):
    from pipeline.training_set import load_or_build_training_set

    return load_or_build_training_set(cfg, progress=progress)


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


def oracle_probabilities(cfg: Config, frame: pd.DataFrame) -> tuple[np.ndarray | None, str | None]:
    """The simulator's true churn probabilities of the rows of `frame` (per snapshot), or None and why not."""
    if cfg.data.oracle is None:
        return None, None
    if cfg.label.kind != "cancellation":
        return None, f"oracle skipped: it knows cancellation risk, the label is '{cfg.label.kind}'"
    truth = Path(cfg.data.oracle)
    if not truth.exists():
        raise ConfigError(
            f"data.oracle {truth} does not exist: point it at the simulator's ground-truth folder or set it to null"
        )
    from simulator.oracle import true_churn_probability

    out = np.empty(len(frame), dtype=np.float64)
    snap = pd.to_datetime(frame["snapshot_date"]).dt.date.to_numpy()
    ids = frame["customer_id"].to_numpy()
    for day in sorted(set(snap)):  # a handful of test snapshots
        mask = snap == day
        out[mask] = np.asarray(
            true_churn_probability(truth, ids[mask], day, cfg.label.horizon_days), dtype=np.float64
        )
    return out, None


def evaluate_scores(
    labels: np.ndarray,
    scores: dict[str, np.ndarray],
    cfg: Config,
    test_snapshots: list[dt.date],
    note: str | None,
) -> Evaluation:
    """Metrics, profit curves and ratios to the oracle of every scorer on the same test rows."""
    metrics = {
        k: evaluate.classification_metrics(labels, p, cfg.evaluation.list_size_pct) for k, p in scores.items()
    }
    profit = {k: evaluate.profit_curve(labels, p, cfg.evaluation) for k, p in scores.items()}
    ratios = {}
    if ORACLE in metrics:
        for k in metrics:
            if k != ORACLE:
                ratios[f"{k}_to_oracle"] = evaluate.ratios(metrics[k], metrics[ORACLE])
    return Evaluation(metrics, profit, ratios, list(test_snapshots), int(len(labels)), note)


def _log_evaluation(ev: Evaluation) -> None:
    flat: dict[str, float] = {}
    for k, m in ev.metrics.items():
        flat.update({f"{k}_{name}": v for name, v in m.items() if np.isfinite(v)})
        flat[f"{k}_profit_best_k_pct"] = ev.profit[k].best_k_pct
        flat[f"{k}_profit_best"] = ev.profit[k].best_profit
    for k, r in ev.ratios.items():
        flat.update({f"{k}_{name}": v for name, v in r.items()})
    mlflow.log_metrics(flat)
    mlflow.log_dict(
        {
            "metrics": ev.metrics,
            "ratios": ev.ratios,
            "profit_best_k_pct": {k: c.best_k_pct for k, c in ev.profit.items()},
            "profit_best": {k: c.best_profit for k, c in ev.profit.items()},
            "test_snapshots": [str(d) for d in ev.test_snapshots],
            "rows": ev.rows,
            "oracle_note": ev.oracle_note,
        },
        "evaluation/metrics.json",
    )
    profit = pd.concat([c.table.assign(scorer=k) for k, c in ev.profit.items()], ignore_index=True)
    mlflow.log_text(profit.to_csv(index=False), "evaluation/profit_curve.csv")


def _log_figures(
    labels: np.ndarray,
    scores: dict[str, np.ndarray],
    ev: Evaluation,
    model: ChurnModel,
    test: pd.DataFrame,
    seed: int,
) -> None:
    curves = {DISPLAY[k]: (labels, p) for k, p in scores.items()}
    figures = {
        "roc.png": plots.roc_figure(curves),
        "precision_recall.png": plots.pr_figure(curves),
        "gains_lift.png": plots.gains_figure(curves),
        "calibration.png": plots.calibration_figure(curves),
        "profit_curve.png": plots.profit_figure({DISPLAY[k]: c for k, c in ev.profit.items()}),
    }
    sample = test.sample(n=min(_SUMMARY_ROWS, len(test)), random_state=seed) if len(test) else test
    contrib = model.contributions(sample)
    importance = explain.global_importance(model.booster, contrib)
    figures["feature_importance.png"] = plots.importance_figure(importance)
    figures["contribution_summary.png"] = plots.contribution_summary_figure(
        contrib, sample[model.feature_names], seed=seed
    )
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}")
    mlflow.log_text(importance.to_csv(index=False), "evaluation/feature_importance.csv")


def _dates(values: list[dt.date]) -> list[str]:
    return [str(d) for d in values]


# -- stages -------------------------------------------------------------------------------------------------
def run_training(cfg: Config, *, progress: bool = False) -> TrainingResult:
    """Train, evaluate, log, register and gate one churn model (see module docstring)."""
    steps = Steps(total=9, progress=progress, title="training")
    try:
        return _train(cfg, steps)
    finally:
        steps.close()


def _train(cfg: Config, steps: Steps) -> TrainingResult:
    start = time.perf_counter()
    mc = cfg.model
    with steps.step("training set (build or reuse)"), steps.paused():
        ts = _training_set(cfg, steps.progress)
        manifest = ts.manifest
        features = list(manifest["features"])
        categorical = list(manifest.get("categorical_features", []))
    with steps.step("out-of-time split"):
        split: Split = out_of_time_split(ts.frame, mc)
        log.debug("%s", split.strategy)

    with steps.step("LightGBM"):
        trials = None
        if mc.tuning_trials > 0:
            tuned = tune_lightgbm(
                split.train,
                split.valid,
                features,
                categorical,
                mc,
                on_trial=lambda i, n: steps.note(f"LightGBM random search: trial {i + 1}/{n} done"),
            )
            fit: LightGBMFit = tuned.best
            trials = tuned.trials
        else:
            fit = train_lightgbm(split.train, split.valid, features, categorical, mc.lightgbm, mc.seed)
    with steps.step("logistic-regression baseline"):
        baseline = train_baseline(split.train, features, categorical, mc.seed)
    with steps.step(f"calibration ({mc.calibration})"):
        calibrator = fit_calibrator(
            predict_raw(fit, split.valid, features), split.valid["label"].to_numpy(), mc.calibration
        )

    with steps.step("test evaluation"):
        model = ChurnModel(
            booster=fit.booster,
            calibrator=calibrator,
            feature_names=features,
            categorical_features=categorical,
            categories=fit.categories,
            reference=reference_profile(split.train, features, categorical),
            metadata={},
            column_types={
                f: mlflow_column_type(split.train[f].dtype) for f in features if f not in categorical
            },
        )
        labels = split.test["label"].to_numpy()
        scores = {
            LGBM: model.predict(None, split.test),
            BASELINE: predict_baseline(baseline, split.test, features),
        }
        oracle, note = oracle_probabilities(cfg, split.test)
        if oracle is not None:
            scores[ORACLE] = oracle
        ev = evaluate_scores(labels, scores, cfg, split.test_snapshots, note)
        valid_raw = evaluate.classification_metrics(
            split.valid["label"].to_numpy(),
            predict_raw(fit, split.valid, features),
            cfg.evaluation.list_size_pct,
        )

    exp_id = experiment_id(cfg)
    with mlflow.start_run(
        experiment_id=exp_id, run_name=f"train {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
    ) as run:
        run_id = run.info.run_id
        model.metadata = {
            "label": manifest.get("label"),
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "data_fingerprint": manifest.get("data_fingerprint"),
            "training_set_fingerprint": manifest.get("fingerprint"),
            "optimal_list_pct": ev.profit[LGBM].best_k_pct,
            "metrics": ev.metrics[LGBM],
            "split": {"kind": split.kind, "strategy": split.strategy},
            "train_snapshots": _dates(split.train_snapshots),
            "valid_snapshots": _dates(split.valid_snapshots),
            "test_snapshots": _dates(split.test_snapshots),
            "calibration": mc.calibration,
            "best_iteration": fit.best_iteration,
            "run_id": run_id,
        }
        with steps.step("MLflow: params, metrics, plots"):
            mlflow.set_tags(
                {
                    "stage": "train",
                    "split.kind": split.kind,
                    "data.fingerprint": str(manifest.get("data_fingerprint")),
                    "training_set.fingerprint": str(manifest.get("fingerprint")),
                }
            )
            mlflow.log_params(flatten_config(cfg))
            mlflow.log_params(
                {f"lgbm.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in fit.params.items()}
            )
            mlflow.log_params(
                {
                    "lgbm.best_iteration": fit.best_iteration,
                    "split.strategy": split.strategy,
                    "split.train_rows": len(split.train),
                    "split.valid_rows": len(split.valid),
                    "split.test_rows": len(split.test),
                    "split.test_snapshots": ",".join(_dates(split.test_snapshots)),
                    "data.fingerprint": manifest.get("data_fingerprint"),
                    "training_set.fingerprint": manifest.get("fingerprint"),
                    "n_features": len(features),
                }
            )
            mlflow.log_text(yaml.safe_dump(public_config(cfg), sort_keys=False), "config.yaml")
            mlflow.log_dict(json.loads(json.dumps(manifest, default=str)), "training_set/manifest.json")
            mlflow.log_dict(
                {"features": features, "categorical_features": categorical, "categories": fit.categories},
                "features.json",
            )
            mlflow.log_text(split.strategy + "\n", "split.txt")
            mlflow.log_metrics({f"lgbm_valid_raw_{k}": v for k, v in valid_raw.items() if np.isfinite(v)})
            if trials is not None:
                mlflow.log_text(trials.to_csv(index=False), "tuning/trials.csv")
            _log_evaluation(ev)
            _log_figures(labels, scores, ev, model, split.test, mc.seed)
        with steps.step("MLflow: log and register the model"):
            info = log_churn_model(model, split.test if len(split.test) else split.train)
            client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
            version = register(client, info.model_uri, cfg.tracking.registered_model, run_id)
        with steps.step("promotion gate"):
            metric = mc.promotion_metric
            decision = promotion_gate(
                cfg.tracking_uri,
                cfg.tracking.registered_model,
                version,
                metric,
                ev.metrics[LGBM][metric],
                split.test,
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

    return TrainingResult(
        run_id=run_id,
        experiment_id=exp_id,
        tracking_uri=cfg.tracking_uri,
        model_name=cfg.tracking.registered_model,
        model_version=version,
        decision=decision,
        evaluation=ev,
        strategy=split.strategy,
        split_sizes=split.sizes(),
        best_iteration=fit.best_iteration,
        features=features,
        training_set_fingerprint=str(manifest.get("fingerprint")),
        seconds=time.perf_counter() - start,
        tuning_trials=mc.tuning_trials,
        timings=steps.timings,
    )


def run_evaluation(cfg: Config, version: str | None = None, *, progress: bool = False) -> EvaluationResult:
    """Evaluate a registered version (default: the champion) on the latest test snapshots; log a new run."""
    steps = Steps(total=4, progress=progress, title="evaluation")
    try:
        return _evaluate(cfg, version, steps)
    finally:
        steps.close()


def _evaluate(cfg: Config, version: str | None, steps: Steps) -> EvaluationResult:
    start = time.perf_counter()
    with steps.step("load model"):
        model, version = load_model(cfg.tracking_uri, cfg.tracking.registered_model, version)
    with steps.step("training set (build or reuse)"), steps.paused():
        ts = _training_set(cfg, steps.progress)
        test, test_dates = held_out_test(ts.frame, cfg.model)
    warnings = []
    trained_on = model.metadata.get("train_snapshots") or []
    if trained_on and max(trained_on) >= str(min(test_dates)):
        warnings.append(
            f"v{version} was trained on snapshots up to {max(trained_on)}, which reaches into the test snapshots "
            f"({', '.join(_dates(test_dates))}): these metrics are optimistic"
        )
    with steps.step("score test snapshots"):
        labels = test["label"].to_numpy()
        scores = {LGBM: model.predict(None, test)}
        oracle, note = oracle_probabilities(cfg, test)
        if oracle is not None:
            scores[ORACLE] = oracle
        ev = evaluate_scores(labels, scores, cfg, test_dates, note)
    exp_id = experiment_id(cfg)
    with (
        steps.step("MLflow: metrics and plots"),
        mlflow.start_run(
            experiment_id=exp_id, run_name=f"evaluate v{version} {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
        ) as run,
    ):
        mlflow.set_tags(
            {
                "stage": "evaluate",
                "registry.model": cfg.tracking.registered_model,
                "registry.version": version,
                "data.fingerprint": str(ts.manifest.get("data_fingerprint")),
            }
        )
        mlflow.log_params(
            {
                "model.version": version,
                "test_snapshots": ",".join(_dates(test_dates)),
                "test_rows": len(test),
                "evaluation.list_size_pct": cfg.evaluation.list_size_pct,
                "evaluation.customer_value": cfg.evaluation.customer_value,
                "evaluation.offer_cost": cfg.evaluation.offer_cost,
                "evaluation.offer_acceptance": cfg.evaluation.offer_acceptance,
            }
        )
        _log_evaluation(ev)
        _log_figures(labels, scores, ev, model, test, cfg.model.seed)
        if warnings:
            mlflow.set_tag("warnings", " | ".join(warnings))
    return EvaluationResult(
        run_id=run.info.run_id,
        experiment_id=exp_id,
        tracking_uri=cfg.tracking_uri,
        model_name=cfg.tracking.registered_model,
        model_version=version,
        evaluation=ev,
        warnings=warnings,
        seconds=time.perf_counter() - start,
    )
