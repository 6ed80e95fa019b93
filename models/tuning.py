"""Optuna search over LightGBM settings, bounded by `model.tuning.trials` and `model.tuning.seconds`.

TPE sampler seeded with `model.seed`, one job, trial 0 = the sized/configured settings (so the search never
ends worse on validation than not searching). With the same data, seed and trial budget the search is
deterministic as long as the trial budget ends it before the time limit does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd

from churn_pipeline.models import evaluate

# Search space around the sized settings: leaves and leaf size relative to them, the rest absolute.
TUNED = ("num_leaves", "min_child_samples", "learning_rate", "subsample", "colsample_bytree", "reg_lambda")


@dataclass
class TuningResult:
    settings: dict
    fits: list
    oof: np.ndarray
    trials: pd.DataFrame  # one row per trial: settings, mean best iteration, validation metric
    seconds: float
    timed_out: bool


def suggest(trial: optuna.Trial, base: dict) -> dict:
    """One trial's settings (trial 0 is enqueued with `base`)."""
    leaves_hi = max(8, 2 * int(base["num_leaves"]))
    child_lo = max(2, int(base["min_child_samples"]) // 4)
    child_hi = max(child_lo + 1, int(base["min_child_samples"]) * 4)
    return {
        **base,
        "num_leaves": trial.suggest_int("num_leaves", 4, leaves_hi, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", child_lo, child_hi, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
    }


def tune_lightgbm(
    base: dict,
    run: Callable[[dict], tuple[list, np.ndarray]],
    score: Callable[[np.ndarray], float],
    ctx,
) -> TuningResult:
    """Search with `run(settings) -> (fold fits, out-of-fold log-odds)` scored by `score(oof)`; keeps the fits
    of the best trial."""
    metric = ctx.metric
    tuning = ctx.cfg.tuning
    direction = "minimize" if metric in evaluate.LOWER_IS_BETTER else "maximize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=ctx.cfg.seed, n_startup_trials=min(10, max(1, tuning.trials // 2))
    )
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.enqueue_trial({k: base[k] for k in TUNED}, skip_if_exists=True)
    best: dict = {}
    rows: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        settings = suggest(trial, base)
        fits, oof = run(settings)
        value = float(score(oof))
        if not np.isfinite(value):
            value = float("inf") if direction == "minimize" else float("-inf")
        rows.append(
            {
                "trial": trial.number,
                **{k: settings[k] for k in TUNED},
                "best_iteration": float(np.mean([f.best_iteration for f in fits])),
                f"valid_{metric}": value,
            }
        )
        if not best or evaluate.better(metric, value, best["value"]):
            best.update(value=value, settings=settings, fits=fits, oof=oof)
        return value

    start = time.perf_counter()
    study.optimize(objective, n_trials=tuning.trials, timeout=tuning.seconds, n_jobs=1, gc_after_trial=False)
    seconds = time.perf_counter() - start
    return TuningResult(
        settings=best["settings"],
        fits=best["fits"],
        oof=best["oof"],
        trials=pd.DataFrame(rows),
        seconds=seconds,
        timed_out=len(rows) < tuning.trials,
    )
