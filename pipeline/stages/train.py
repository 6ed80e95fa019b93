"""Training and evaluation stages: training set -> split -> candidates (LightGBM, logistic, blend, ...) developed
on the folds, the best on validation chosen, calibrated and refitted -> test metrics of every candidate and
baseline -> one MLflow run (params, metrics, plots, pyfunc model) -> registry -> promotion gate.

Wiring only: the computations live in `models/`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from churn_pipeline.core.config import Config, public_config
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.progress import Steps
from churn_pipeline.models import evaluate, plots
from churn_pipeline.models.calibration import fit_calibrator
from churn_pipeline.models.churn_model import ChurnModel, mlflow_column_type
from churn_pipeline.models.drift import reference_profile
from churn_pipeline.models.evaluate import ProfitCurve
from churn_pipeline.models.registry import (
    GateDecision,
    load_model,
    log_churn_model,
    promotion_gate,
    register,
    sqlite_path,
    use_tracking,
)
from churn_pipeline.models.split import (
    Split,
    held_out_test,
    out_of_time_split,
    sample_mask,
    sampling_rate,
    split_dates,
)
from churn_pipeline.models.training import Trained, refit_chosen, train_candidates
from churn_pipeline.stages.training_set import TrainingSet, TrainingSetManifest, load_or_build_training_set

log = logging.getLogger(__name__)

MODEL, ORACLE = "model", "oracle"
# A reference scorer of test rows handed in by the caller (the CLI passes the simulator's oracle): the true
# churn probabilities of a frame's rows, or None and a note saying why there are none.
Oracle = Callable[[pd.DataFrame], tuple[np.ndarray | None, str | None]]
_SUMMARY_ROWS = 3000  # customers in the contribution summary plot


@dataclass
class Evaluation:
    """Test-set metrics and profit curves of each scorer (candidates, baselines, oracle; `model` when a
    registered version is evaluated); `chosen` is the scorer of the registered model."""

    metrics: dict[str, dict[str, float]]
    profit: dict[str, ProfitCurve]
    ratios: dict[str, dict[str, float]]  # "<scorer>_to_oracle" -> metric -> ratio
    test_snapshots: list[dt.date]
    rows: int
    oracle_note: str | None = None
    chosen: str = MODEL
    baselines: tuple[str, ...] = ()
    # the at-risk list size the model publishes (a share of customers, chosen on validation) and what it
    # earns on these test rows; None when no such share is known
    list_pct: float | None = None
    list_pct_origin: str = ""
    list_profit: float | None = None


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
    chosen: str = ""
    reason: str = ""
    valid_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def optimal_list_pct(self) -> float | None:
        """The at-risk list share the model publishes (chosen on validation)."""
        return self.evaluation.list_pct


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


def evaluate_scores(
    labels: np.ndarray,
    scores: dict[str, np.ndarray],
    cfg: Config,
    test_snapshots: list[dt.date],
    note: str | None,
    chosen: str = MODEL,
    baselines: tuple[str, ...] = (),
    list_pct: float | None = None,
    list_pct_origin: str = "",
) -> Evaluation:
    """Metrics, profit curves and ratios to the oracle of every scorer on the same test rows; with
    `list_pct`, also what a list of that share (chosen elsewhere) earns here with the chosen scorer."""
    metrics = {
        k: evaluate.classification_metrics(labels, p, cfg.evaluation.list_size_pct) for k, p in scores.items()
    }
    profit = {k: evaluate.profit_curve(labels, p, cfg.evaluation) for k, p in scores.items()}
    ratios = {}
    if ORACLE in metrics:
        for k in metrics:
            if k != ORACLE:
                ratios[f"{k}_to_oracle"] = evaluate.ratios(metrics[k], metrics[ORACLE])
    list_profit = (
        None
        if list_pct is None
        else evaluate.profit_at_share(labels, scores[chosen], cfg.evaluation, list_pct)
    )
    return Evaluation(
        metrics,
        profit,
        ratios,
        list(test_snapshots),
        int(len(labels)),
        note,
        chosen,
        tuple(baselines),
        list_pct,
        list_pct_origin,
        list_profit,
    )


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


def _log_figures(
    labels: np.ndarray,
    scores: dict[str, np.ndarray],
    ev: Evaluation,
    model: ChurnModel,
    test: pd.DataFrame,
    seed: int,
) -> None:
    curves = {_display(k, ev): (labels, p) for k, p in scores.items()}
    figures = {
        "roc.png": plots.roc_figure(curves),
        "precision_recall.png": plots.pr_figure(curves),
        "gains_lift.png": plots.gains_figure(curves),
        "calibration.png": plots.calibration_figure(
            {
                _display(k, ev): v
                for k, v in zip(scores, curves.values(), strict=True)
                if k not in ev.baselines
            }
        ),
        "profit_curve.png": plots.profit_figure({_display(k, ev): c for k, c in ev.profit.items()}),
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


def _display(key: str, ev: Evaluation) -> str:
    return f"{key} (registered)" if key == ev.chosen and key != MODEL else key


def _dates(values: list[dt.date]) -> list[str]:
    return [str(d) for d in values]


# -- stages -------------------------------------------------------------------------------------------------
def run_training(cfg: Config, *, progress: bool = False, oracle: Oracle | None = None) -> TrainingResult:
    """Train, evaluate, log, register and gate one churn model (see module docstring); `oracle` (the
    simulator's, handed in by the CLI) is reported beside the model on the test rows."""
    steps = Steps(total=8 if cfg.model.final_fit == "all" else 7, progress=progress, title="training")
    try:
        return _train(cfg, steps, oracle)
    finally:
        steps.close()


def _rss(what: str) -> None:
    """Debug log of this process's resident memory (now and peak): where training's memory goes."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    try:
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f)
    except OSError:  # not Linux
        return
    gb = {k: int(status[k].split()[0]) / 2**20 for k in ("VmRSS", "VmHWM") if k in status}
    log.debug("memory at %s: rss %.2f GB, peak %.2f GB", what, gb.get("VmRSS", 0), gb.get("VmHWM", 0))


def _train(cfg: Config, steps: Steps, oracle_of: Oracle | None) -> TrainingResult:
    start = time.perf_counter()
    mc = cfg.model

    def on_step(text: str) -> None:
        _rss(text)
        steps.note(text)

    with steps.step("training set (build or reuse)"), steps.paused():
        ts = _training_set(cfg, steps.progress)
        manifest = ts.manifest
        features = list(manifest.features)
        categorical = list(manifest.categorical_features)
    _rss("training set loaded")
    with steps.step("split"):
        frame, rate = _training_rows(ts, mc)
        split: Split = out_of_time_split(frame, mc, rate)
        del frame
        log.debug("%s", split.strategy)
    _rss("split done")

    with steps.step(f"candidates ({', '.join(mc.candidates)}): develop, choose, refit"):
        trained: Trained = train_candidates(
            split, features, categorical, mc, cfg.evaluation.list_size_pct, on_step=on_step
        )
        sel = trained.selection
        chosen = sel.chosen
    _rss("candidates done")

    with steps.step("test evaluation"):
        model = ChurnModel(
            estimator=trained.fitted(),
            calibrator=trained.calibrators[chosen],
            feature_names=features,
            categorical_features=categorical,
            categories=trained.categories,
            # sampled development rows over-represent churners: the drift reference is then the (whole)
            # validation snapshots
            reference=reference_profile(_unsampled(split), features, categorical),
            metadata={},
            column_types={
                f: mlflow_column_type(split.development[f].dtype) for f in features if f not in categorical
            },
        )
        labels = split.test["label"].to_numpy()
        scores = trained.predict_all(split.test, sel.listed)
        scores[chosen] = model.predict(None, split.test)
        baselines = _baseline_probabilities(split, cfg)
        scores.update(baselines)
        oracle, note = oracle_of(split.test) if oracle_of else (None, None)
        if oracle is not None:
            scores[ORACLE] = oracle
        # The list size is chosen on the validation (out-of-fold) predictions of the chosen candidate, per
        # customer; the test rows only report what that share earns.
        valid_choice = evaluate.profit_curve(
            trained.calibration_labels, trained.calibration_scores[chosen], cfg.evaluation
        )
        ev = evaluate_scores(
            labels,
            scores,
            cfg,
            split.test_snapshots,
            note,
            chosen,
            tuple(baselines),
            list_pct=valid_choice.best_k_pct,
            list_pct_origin=(
                f"profit-optimal on validation: top {valid_choice.best_contacted:,} of {valid_choice.rows:,} "
                f"validation customers"
            ),
        )
    _rss("test evaluation done")

    final_rows, learnt_test = trained.development_rows, False
    if mc.final_fit == "all" and len(split.test):
        # The latest labelled snapshot is the closest to the dates the model will score: the registered model
        # learns it too, with the settings chosen without it (the test metrics above stay honest).
        with steps.step("final fit on every labelled row"):
            # the test rows join by the development rows' sampling rule, so the base rate the calibrator
            # corrects for stays the same
            dev_rows = (
                split.development if split.refit_rows is None else split.development.iloc[split.refit_rows]
            )
            test_rows = split.test[sample_mask(split.test, split.sampling_rate, mc.seed)]
            every = pd.concat([dev_rows, test_rows], ignore_index=True)
            del dev_rows, test_rows
            model.estimator = refit_chosen(trained, split, every, mc, cfg.evaluation.list_size_pct)
            final_rows, learnt_test = len(every), True
            del every
        _rss("final fit done")

    exp_id = experiment_id(cfg)
    chosen_fit = model.estimator
    with mlflow.start_run(
        experiment_id=exp_id, run_name=f"train {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
    ) as run:
        run_id = run.info.run_id
        model.metadata = {
            "label": manifest.label.to_json(),
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "data_fingerprint": manifest.data_fingerprint,
            "training_set_fingerprint": manifest.fingerprint,
            "optimal_list_pct": ev.list_pct,
            "optimal_list_origin": ev.list_pct_origin,
            "metrics": ev.metrics[chosen],
            "candidate": chosen,
            "selection": sel.reason,
            "settings": json.loads(json.dumps(chosen_fit.describe(), default=str)),
            "split": {"kind": split.kind, "strategy": split.strategy},
            # what the registered model learnt from: the training and validation snapshots (the development
            # refit), and the test ones too after a final fit on every row (`churn evaluate` warns then)
            "train_snapshots": _dates(
                sorted(
                    {*split.train_snapshots, *split.valid_snapshots}
                    | (set(split.test_snapshots) if learnt_test else set())
                )
            ),
            "valid_snapshots": _dates(split.valid_snapshots),
            "test_snapshots": _dates(split.test_snapshots),
            "calibration": mc.calibration,
            "best_iteration": _best_iteration(chosen_fit),
            "final_fit": {"kind": mc.final_fit, "rows": final_rows},
            "run_id": run_id,
        }
        with steps.step("MLflow: params, metrics, plots"):
            mlflow.set_tags(
                {
                    "stage": "train",
                    "split.kind": split.kind,
                    "data.fingerprint": manifest.data_fingerprint,
                    "training_set.fingerprint": manifest.fingerprint,
                    "candidate.chosen": chosen,
                    "candidate.reason": sel.reason,
                }
            )
            mlflow.log_params(flatten_config(cfg))
            for name, settings in sel.refit_settings.items():
                mlflow.log_params(
                    {
                        f"{name}.{k}": json.dumps(v) if isinstance(v, list | dict) else v
                        for k, v in settings.items()
                    }
                )
            mlflow.log_params(
                {
                    "candidate.chosen": chosen,
                    "split.strategy": split.strategy,
                    "split.train_rows": len(split.train),
                    "split.valid_rows": len(split.valid),
                    "split.test_rows": len(split.test),
                    "split.development_rows": trained.development_rows,
                    "final_fit.rows": final_rows,
                    "split.folds": len(split.folds or []),
                    "split.test_snapshots": ",".join(_dates(split.test_snapshots)),
                    "data.fingerprint": manifest.data_fingerprint,
                    "training_set.fingerprint": manifest.fingerprint,
                    "n_features": len(features),
                }
            )
            _log_training_input(split.development, features, manifest)
            mlflow.log_text(yaml.safe_dump(public_config(cfg), sort_keys=False), "config.yaml")
            mlflow.log_dict(manifest.to_json(), "training_set/manifest.json")
            mlflow.log_dict(
                {"features": features, "categorical_features": categorical, "categories": trained.categories},
                "features.json",
            )
            mlflow.log_text(split.strategy + "\n", "split.txt")
            _log_selection(trained)
            _log_evaluation(ev)
            _log_figures(labels, scores, ev, model, split.test, mc.seed)
        with steps.step("MLflow: log and register the model"):
            info = log_churn_model(model, split.test if len(split.test) else split.train)
            client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
            version = register(client, info.model_uri, cfg.tracking.registered_model, run_id)
            client.set_model_version_tag(cfg.tracking.registered_model, version, "candidate", chosen)
            client.set_model_version_tag(
                cfg.tracking.registered_model, version, "candidate.reason", sel.reason
            )
        with steps.step("promotion gate"):
            metric = mc.promotion_metric
            decision = promotion_gate(
                cfg.tracking_uri,
                cfg.tracking.registered_model,
                version,
                metric,
                ev.metrics[chosen][metric],
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

    lgbm = sel.developed.get("lightgbm")
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
        best_iteration=_best_iteration(chosen_fit),
        features=features,
        training_set_fingerprint=manifest.fingerprint,
        seconds=time.perf_counter() - start,
        tuning_trials=0 if lgbm is None or lgbm.trials is None else len(lgbm.trials),
        timings=steps.timings,
        chosen=chosen,
        reason=sel.reason,
        valid_metrics=sel.valid_metrics,
        notes={n: d.note for n, d in sel.developed.items() if d.note},
    )


def _best_iteration(fit) -> int | None:
    booster = fit.booster
    return None if booster is None else int(booster.num_trees())


def _unsampled(split: Split) -> pd.DataFrame:
    """Development rows at the data's churn rate: all of them, or the validation rows when non-churners of the
    training rows are sampled."""
    return split.development if split.sampling_rate >= 1.0 else split.valid


def _training_rows(ts, mc) -> tuple[pd.DataFrame, float | None]:
    """The training set's rows for the split, read one snapshot at a time with the non-churners of the train
    snapshots already sampled at the rate the whole set needs (`models.split.sampling_rate` of the manifest's
    counts; the split samples them again by the same rule, which keeps them all). The rate, or None when the
    rows come whole from memory."""
    snapshots = ts.manifest.snapshots
    if not isinstance(ts, TrainingSet) or len(snapshots) < 2:
        return ts.frame, None
    dates = [s.date for s in snapshots]
    train_dates, valid_dates, _, _ = split_dates(dates, mc)
    dev = [s for s, d in zip(snapshots, dates, strict=True) if d in set(train_dates) | set(valid_dates)]
    rows = sum(s.rows for s in dev)
    churners = sum(s.churners for s in dev)
    rate = sampling_rate(rows, churners, mc.max_training_rows)
    if rate >= 1.0:
        return ts.read(), rate
    train_days = pd.DatetimeIndex([pd.Timestamp(d) for d in train_dates])

    def keep(part: pd.DataFrame) -> np.ndarray:
        in_train = part["snapshot_date"].isin(train_days).to_numpy()
        return ~in_train | sample_mask(part[["customer_id", "snapshot_date", "label"]], rate, mc.seed)

    return ts.read(keep), rate


def _baseline_probabilities(split: Split, cfg: Config) -> dict[str, np.ndarray]:
    """Non-learned baselines (`evaluate.baseline_scores`) on the test rows, as probabilities: each score is
    mapped to (0, 1) and calibrated (isotonic) on the development rows; the order of the score is kept."""
    dev = _unsampled(split)
    dev_scores = evaluate.baseline_scores(dev)
    test_scores = evaluate.baseline_scores(split.test)
    y = dev["label"].to_numpy()
    out = {}
    for name, dev in dev_scores.items():
        if name not in test_scores or len(np.unique(y)) < 2:
            continue
        cal = fit_calibrator(evaluate.squash(dev, dev), y, "isotonic")
        out[name] = cal.transform(evaluate.squash(test_scores[name], dev))
    return out


def _log_training_input(
    development: pd.DataFrame, features: list[str], manifest: TrainingSetManifest
) -> None:
    """The development rows as the run's training dataset: schema, row count and the training set's
    fingerprint as digest (MLflow stores no copy of the rows and, given the digest, does not hash them)."""
    from mlflow.models import infer_signature

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
        curves = [f.curve for f in lgbm.fold_fits if getattr(f, "curve", None)]
        if curves:
            mlflow.log_figure(plots.learning_curve_figure(curves), "plots/learning_curve.png")
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            history = [
                Metric("valid_lightgbm_curve_logloss", float(v), now, i + 1) for i, v in enumerate(curves[0])
            ]
            run_id = mlflow.active_run().info.run_id
            for i in range(0, len(history), 1000):  # one write per 1000 points, not one per iteration
                MlflowClient().log_batch(run_id, metrics=history[i : i + 1000])


def run_evaluation(
    cfg: Config, version: str | None = None, *, progress: bool = False, oracle: Oracle | None = None
) -> EvaluationResult:
    """Evaluate a registered version (default: the champion) on the latest test snapshots; log a new run."""
    steps = Steps(total=4, progress=progress, title="evaluation")
    try:
        return _evaluate(cfg, version, steps, oracle)
    finally:
        steps.close()


def _evaluate(cfg: Config, version: str | None, steps: Steps, oracle_of: Oracle | None) -> EvaluationResult:
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
        scores = {MODEL: model.predict(None, test)}
        oracle, note = oracle_of(test) if oracle_of else (None, None)
        if oracle is not None:
            scores[ORACLE] = oracle
        pct = model.metadata.get("optimal_list_pct")
        ev = evaluate_scores(
            labels,
            scores,
            cfg,
            test_dates,
            note,
            list_pct=float(pct) if pct else None,
            list_pct_origin=model.metadata.get("optimal_list_origin", "the model's evaluation"),
        )
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
                "data.fingerprint": ts.manifest.data_fingerprint,
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
