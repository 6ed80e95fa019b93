"""Training and evaluation stages: training set -> split -> candidates (LightGBM, logistic, blend, ...) developed
on the folds, the best on validation chosen, calibrated and refitted -> test metrics of every candidate and
baseline -> one MLflow run (params, metrics, plots, pyfunc model) -> registry -> promotion gate.

Each stage reads (the training set, a registered model), calls pure steps (split, fit, score, choose the list
size, evaluate; the computations themselves live in `models/`) and writes through `stages.tracking` (MLflow).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn_pipeline.core.config import Config, ModelConfig
from churn_pipeline.core.progress import Steps
from churn_pipeline.models import evaluate
from churn_pipeline.models.calibration import fit_calibrator
from churn_pipeline.models.candidates import Fitted
from churn_pipeline.models.churn_model import ChurnModel, mlflow_column_type
from churn_pipeline.models.drift import reference_profile, trend_psi
from churn_pipeline.models.registry import GateDecision, load_model
from churn_pipeline.models.split import (
    Split,
    held_out_test,
    out_of_time_split,
    sample_mask,
    sampling_rate,
    split_dates,
)
from churn_pipeline.models.training import Trained, refit_chosen, train_candidates
from churn_pipeline.stages import tracking
from churn_pipeline.stages.evaluation import (
    MODEL,
    Evaluation,
    Oracle,
    Scored,
    evaluate_scores,
    scored_rows,
)
from churn_pipeline.stages.training_set import TrainingSet, TrainingSetManifest, load_or_build_training_set

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class FinalFit:
    """What the registered model was last fitted on: how many rows, and whether the test snapshots were
    among them (`model.final_fit: all`)."""

    rows: int
    learnt_test: bool


@dataclass(frozen=True)
class Registration:
    """The MLflow run of a training, the version it registered and the promotion gate's decision."""

    experiment_id: str
    run_id: str
    version: str
    decision: GateDecision


# -- churn train --------------------------------------------------------------------------------------------
def run_training(cfg: Config, *, progress: bool = False, oracle: Oracle | None = None) -> TrainingResult:
    """Train, evaluate, log, register and gate one churn model (see module docstring); `oracle` (the
    simulator's, handed in by the CLI) is reported beside the model on the test rows."""
    steps = Steps(total=8 if cfg.model.final_fit == "all" else 7, progress=progress, title="training")
    try:
        return _train(cfg, steps, oracle)
    finally:
        steps.close()


def _train(cfg: Config, steps: Steps, oracle: Oracle | None) -> TrainingResult:
    start = time.perf_counter()
    with steps.step("training set (build or reuse)"), steps.paused():
        ts = _training_set(cfg, steps.progress)
    _rss("training set loaded")
    with steps.step("split"):
        split = _split(ts, cfg.model)
    _rss("split done")
    with steps.step(f"candidates ({', '.join(cfg.model.candidates)}): develop, choose, refit"):
        trained = _candidates(split, ts.manifest, cfg, steps)
    _rss("candidates done")
    with steps.step("test evaluation"):
        model = _churn_model(trained, split, ts.manifest)
        scored = _test_scores(trained, model, split, cfg, oracle)
        ev = _test_evaluation(scored, trained, split, cfg)
    _rss("test evaluation done")
    final = FinalFit(trained.development_rows, learnt_test=False)
    if cfg.model.final_fit == "all" and len(split.test):
        # The latest labelled snapshot is the closest to the dates the model will score: the registered model
        # learns it too, with the settings chosen without it (the test metrics above stay honest).
        with steps.step("final fit on every labelled row"):
            model.estimator, final = _final_fit(trained, split, cfg)
        _rss("final fit done")
    registration = _registration(cfg, steps, ts.manifest, split, trained, model, final, scored, ev)
    return _training_result(cfg, registration, ts.manifest, split, trained, model, ev, start, steps)


def _training_set(cfg: Config, progress: bool) -> TrainingSet:
    """The training set of `cfg` (built, or reused by fingerprint); tests hand in their own here."""
    return load_or_build_training_set(cfg, progress=progress)


def _split(ts: TrainingSet, mc: ModelConfig) -> Split:
    """The out-of-time split of the training set's rows."""
    frame, rate = _training_rows(ts, mc)
    split = out_of_time_split(frame, mc, rate)
    log.debug("%s", split.strategy)
    return split


def _training_rows(ts: TrainingSet, mc: ModelConfig) -> tuple[pd.DataFrame, float | None]:
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


def _candidates(split: Split, manifest: TrainingSetManifest, cfg: Config, steps: Steps) -> Trained:
    """The configured candidates developed on the split's folds, the best on validation chosen, calibrated
    and refitted on the development rows (`models.training.train_candidates`)."""

    def on_step(text: str) -> None:
        _rss(text)
        steps.note(text)

    return train_candidates(
        split,
        list(manifest.features),
        list(manifest.categorical_features),
        cfg.model,
        cfg.evaluation.list_size_pct,
        on_step=on_step,
    )


def _churn_model(trained: Trained, split: Split, manifest: TrainingSetManifest) -> ChurnModel:
    """The chosen candidate as the model to register: calibrated, with its features, their categories and
    the drift reference (its metadata comes with the MLflow run)."""
    features, categorical = list(manifest.features), list(manifest.categorical_features)
    return ChurnModel(
        estimator=trained.fitted(),
        calibrator=trained.calibrators[trained.selection.chosen],
        feature_names=features,
        categorical_features=categorical,
        categories=trained.categories,
        reference=_drift_reference(split, features, categorical),
        metadata={},
        column_types={
            f: mlflow_column_type(split.development[f].dtype) for f in features if f not in categorical
        },
    )


def _test_scores(
    trained: Trained, model: ChurnModel, split: Split, cfg: Config, oracle: Oracle | None
) -> Scored:
    """Every scorer's probabilities for the test rows: the listed candidates (the chosen one as the calibrated
    model to register), the baselines and the oracle."""
    scores = trained.predict_all(split.test, trained.selection.listed)
    scores[trained.selection.chosen] = model.predict(None, split.test)
    baselines = _baseline_probabilities(split, cfg)
    scores.update(baselines)
    return scored_rows(split.test, scores, oracle, tuple(baselines))


def _baseline_probabilities(split: Split, cfg: Config) -> dict[str, np.ndarray]:
    """Non-learned baselines (`evaluate.baseline_scores`) on the test rows, as probabilities: each score is
    mapped to (0, 1) and calibrated (isotonic) on the development rows; the order of the score is kept."""
    dev = _unsampled(split)
    dev_scores = evaluate.baseline_scores(dev)
    test_scores = evaluate.baseline_scores(split.test)
    y = dev["label"].to_numpy()
    out = {}
    for name, score in dev_scores.items():
        if name not in test_scores or len(np.unique(y)) < 2:
            continue
        cal = fit_calibrator(evaluate.squash(score, score), y, "isotonic")
        out[name] = cal.transform(evaluate.squash(test_scores[name], score))
    return out


def _drift_reference(split: Split, features: list[str], categorical: list[str]) -> dict:
    """The drift reference stored with the model: the profile of the development rows (sampled ones
    over-represent churners: then the whole validation snapshots), and each feature's PSI between the first
    and the last labelled snapshot (`models.drift.trend_psi`), which tells the scoring gate the features that
    trend with time."""
    reference = reference_profile(_unsampled(split), features, categorical)
    labelled = [split.development, split.test] if len(split.test) else [split.development]
    dates = sorted({d for frame in labelled for d in frame["snapshot_date"].unique()})
    if len(dates) > 1:
        first = split.development[split.development["snapshot_date"] == dates[0]]
        last = labelled[-1][labelled[-1]["snapshot_date"] == dates[-1]]
        reference["trend_psi"] = trend_psi(first, last, features, categorical)
        reference["trend_dates"] = [
            pd.Timestamp(dates[0]).date().isoformat(),
            pd.Timestamp(dates[-1]).date().isoformat(),
        ]
    return reference


def _unsampled(split: Split) -> pd.DataFrame:
    """Development rows at the data's churn rate: all of them, or the validation rows when non-churners of the
    training rows are sampled."""
    return split.development if split.sampling_rate >= 1.0 else split.valid


def _list_size(trained: Trained, cfg: Config) -> tuple[float, str]:
    """The at-risk list share the model publishes and where it comes from: profit-optimal on the validation
    (out-of-fold) predictions of the chosen candidate, per customer; the test rows only report what it earns."""
    chosen = trained.selection.chosen
    curve = evaluate.profit_curve(
        trained.calibration_labels, trained.calibration_scores[chosen], cfg.evaluation
    )
    origin = (
        f"profit-optimal on validation: top {curve.best_contacted:,} of {curve.rows:,} validation customers"
    )
    return curve.best_k_pct, origin


def _test_evaluation(scored: Scored, trained: Trained, split: Split, cfg: Config) -> Evaluation:
    """The test metrics of every scorer, and what the list size chosen on validation earns on the test rows."""
    pct, origin = _list_size(trained, cfg)
    return evaluate_scores(
        scored,
        cfg,
        split.test_snapshots,
        chosen=trained.selection.chosen,
        list_pct=pct,
        list_pct_origin=origin,
    )


def _final_fit(trained: Trained, split: Split, cfg: Config) -> tuple[Fitted, FinalFit]:
    """The chosen candidate refitted, with its settings, on the development and the test rows."""
    # the test rows join by the development rows' sampling rule, so the base rate the calibrator corrects for
    # stays the same
    dev_rows = split.development if split.refit_rows is None else split.development.iloc[split.refit_rows]
    test_rows = split.test[sample_mask(split.test, split.sampling_rate, cfg.model.seed)]
    every = pd.concat([dev_rows, test_rows], ignore_index=True)
    del dev_rows, test_rows
    fitted = refit_chosen(trained, split, every, cfg.model, cfg.evaluation.list_size_pct)
    return fitted, FinalFit(len(every), learnt_test=True)


def _registration(
    cfg: Config,
    steps: Steps,
    manifest: TrainingSetManifest,
    split: Split,
    trained: Trained,
    model: ChurnModel,
    final: FinalFit,
    scored: Scored,
    ev: Evaluation,
) -> Registration:
    """One MLflow run: the model's metadata, params, metrics and plots; the model logged and registered;
    the promotion gate's decision."""
    experiment = tracking.experiment_id(cfg)
    with tracking.start_run(experiment, "train") as run:
        run_id = run.info.run_id
        model.metadata = _model_metadata(
            manifest, split, trained, model.estimator, final, ev, cfg.model, run_id
        )
        with steps.step("MLflow: params, metrics, plots"):
            tracking.log_training(cfg, manifest, split, trained, final.rows, scored, ev, model)
        with steps.step("MLflow: log and register the model"):
            example = split.test if len(split.test) else split.train
            version = tracking.register_model(cfg, model, example, run_id, trained)
        with steps.step("promotion gate"):
            decision = tracking.promote(cfg, version, ev, split.test)
    return Registration(experiment, run_id, version, decision)


def _model_metadata(
    manifest: TrainingSetManifest,
    split: Split,
    trained: Trained,
    fitted: Fitted,
    final: FinalFit,
    ev: Evaluation,
    mc: ModelConfig,
    run_id: str,
) -> dict[str, Any]:
    """What the registered model carries about itself (`ChurnModel.metadata`): its label, data, list size,
    metrics, candidate and settings, and the snapshots it learnt from."""
    sel = trained.selection
    # what the registered model learnt from: the training and validation snapshots (the development refit),
    # and the test ones too after a final fit on every row (`churn evaluate` warns then)
    learnt = {*split.train_snapshots, *split.valid_snapshots} | (
        set(split.test_snapshots) if final.learnt_test else set()
    )
    return {
        "label": manifest.label.to_json(),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data_fingerprint": manifest.data_fingerprint,
        "training_set_fingerprint": manifest.fingerprint,
        "optimal_list_pct": ev.list_pct,
        "optimal_list_origin": ev.list_pct_origin,
        "metrics": ev.metrics[sel.chosen],
        "candidate": sel.chosen,
        "selection": sel.reason,
        "settings": json.loads(json.dumps(fitted.describe(), default=str)),
        "split": {"kind": split.kind, "strategy": split.strategy},
        "train_snapshots": _dates(sorted(learnt)),
        "valid_snapshots": _dates(split.valid_snapshots),
        "test_snapshots": _dates(split.test_snapshots),
        "calibration": mc.calibration,
        "best_iteration": _best_iteration(fitted),
        "final_fit": {"kind": mc.final_fit, "rows": final.rows},
        "run_id": run_id,
    }


def _training_result(
    cfg: Config,
    registration: Registration,
    manifest: TrainingSetManifest,
    split: Split,
    trained: Trained,
    model: ChurnModel,
    ev: Evaluation,
    start: float,
    steps: Steps,
) -> TrainingResult:
    sel = trained.selection
    lgbm = sel.developed.get("lightgbm")
    return TrainingResult(
        run_id=registration.run_id,
        experiment_id=registration.experiment_id,
        tracking_uri=cfg.tracking_uri,
        model_name=cfg.tracking.registered_model,
        model_version=registration.version,
        decision=registration.decision,
        evaluation=ev,
        strategy=split.strategy,
        split_sizes=split.sizes(),
        best_iteration=_best_iteration(model.estimator),
        features=list(manifest.features),
        training_set_fingerprint=manifest.fingerprint,
        seconds=time.perf_counter() - start,
        tuning_trials=0 if lgbm is None or lgbm.trials is None else len(lgbm.trials),
        timings=steps.timings,
        chosen=sel.chosen,
        reason=sel.reason,
        valid_metrics=sel.valid_metrics,
        notes={n: d.note for n, d in sel.developed.items() if d.note},
    )


def _best_iteration(fit: Fitted) -> int | None:
    booster = fit.booster
    return None if booster is None else int(booster.num_trees())


def _dates(values: list[dt.date]) -> list[str]:
    return [str(d) for d in values]


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


# -- churn evaluate -----------------------------------------------------------------------------------------
def run_evaluation(
    cfg: Config, version: str | None = None, *, progress: bool = False, oracle: Oracle | None = None
) -> EvaluationResult:
    """Evaluate a registered version (default: the champion) on the latest test snapshots; log a new run."""
    steps = Steps(total=4, progress=progress, title="evaluation")
    try:
        return _evaluate(cfg, version, steps, oracle)
    finally:
        steps.close()


def _evaluate(cfg: Config, version: str | None, steps: Steps, oracle: Oracle | None) -> EvaluationResult:
    start = time.perf_counter()
    with steps.step("load model"):
        model, version = load_model(cfg.tracking_uri, cfg.tracking.registered_model, version)
    with steps.step("training set (build or reuse)"), steps.paused():
        ts = _training_set(cfg, steps.progress)
        test, test_dates = held_out_test(ts.frame, cfg.model)
    warnings = _leakage_warnings(model, version, test_dates)
    with steps.step("score test snapshots"):
        scored = scored_rows(test, {MODEL: model.predict(None, test)}, oracle)
        ev = _registered_evaluation(scored, model, test_dates, cfg)
    experiment = tracking.experiment_id(cfg)
    with (
        steps.step("MLflow: metrics and plots"),
        tracking.start_run(experiment, f"evaluate v{version}") as run,
    ):
        tracking.log_evaluation_run(cfg, version, ts.manifest, test, scored, ev, model, warnings)
    return EvaluationResult(
        run_id=run.info.run_id,
        experiment_id=experiment,
        tracking_uri=cfg.tracking_uri,
        model_name=cfg.tracking.registered_model,
        model_version=version,
        evaluation=ev,
        warnings=warnings,
        seconds=time.perf_counter() - start,
    )


def _leakage_warnings(model: ChurnModel, version: str, test_dates: list[dt.date]) -> list[str]:
    """A warning when the model learnt from the test snapshots (a final fit on every row): its metrics on
    them are then optimistic."""
    trained_on = model.metadata.get("train_snapshots") or []
    if not trained_on or max(trained_on) < str(min(test_dates)):
        return []
    return [
        f"v{version} was trained on snapshots up to {max(trained_on)}, which reaches into the test snapshots "
        f"({', '.join(_dates(test_dates))}): these metrics are optimistic"
    ]


def _registered_evaluation(
    scored: Scored, model: ChurnModel, test_dates: list[dt.date], cfg: Config
) -> Evaluation:
    """The registered model's test metrics, and what the list size it publishes earns on the test rows."""
    pct = model.metadata.get("optimal_list_pct")
    return evaluate_scores(
        scored,
        cfg,
        test_dates,
        list_pct=float(pct) if pct else None,
        list_pct_origin=model.metadata.get("optimal_list_origin", "the model's evaluation"),
    )
