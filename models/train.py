"""Model fitting: LightGBM (categoricals native, early stopping on validation), an optional random search, and
a logistic-regression baseline on the same split."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from models import evaluate
from models.encoding import categorical_as_strings, observed_categories, with_categories
from pipeline.config import LightGBMConfig, ModelConfig
from pipeline.errors import DataValidationError

# Random-search space; trial 0 is always the configured parameters.
SEARCH_SPACE: dict[str, list] = {
    "num_leaves": [7, 15, 31, 63, 127],
    "max_depth": [4, 6, 8, -1],
    "learning_rate": [0.02, 0.05, 0.1],
    "min_child_samples": [20, 50, 100, 200],
    "subsample": [0.6, 0.8, 1.0],
    "colsample_bytree": [0.5, 0.7, 0.8, 1.0],
    "reg_lambda": [0.0, 1.0, 5.0, 20.0],
}
_MISSING_TEXT = "__missing__"


@dataclass
class LightGBMFit:
    """A trained booster (truncated to its best iteration) and how it was trained."""

    booster: lgb.Booster
    params: dict
    best_iteration: int
    categories: dict[str, list[str]]
    valid_metrics: dict[str, float]
    curve: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class TuningResult:
    best: LightGBMFit
    best_config: LightGBMConfig
    trials: pd.DataFrame  # one row per trial: params, best_iteration, validation metric


def check_features(frame: pd.DataFrame, feature_names: list[str], what: str) -> None:
    """Every feature column must be present; the label must be 0/1 without gaps."""
    missing = [c for c in [*feature_names, "label"] if c not in frame.columns]
    if missing:
        raise DataValidationError([f"{what}: column(s) {missing} missing from the training frame"])
    labels = frame["label"]
    if labels.isna().any() or not labels.isin([0, 1]).all():
        bad = sorted(set(labels.dropna().unique()) - {0, 1})[:5]
        raise DataValidationError(
            [f"{what}: column 'label' must be 0/1 with no missing values (found {bad or 'missing values'})"]
        )


def training_categories(frame: pd.DataFrame, categorical_features: list[str]) -> dict[str, list[str]]:
    """Categories of every categorical feature as observed in the training rows (fixed from then on)."""
    return {c: observed_categories(frame[c]) for c in categorical_features}


def lightgbm_matrix(
    frame: pd.DataFrame, feature_names: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """The feature columns as LightGBM sees them: categoricals with the training categories, numbers as floats."""
    cols = {}
    for name in feature_names:
        col = frame[name]
        if name in categories:
            cols[name] = with_categories(col, categories[name])
        elif col.dtype.kind in "fiub" and not isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
            cols[name] = col
        else:
            cols[name] = pd.to_numeric(col, errors="coerce").astype("float64")
    return pd.DataFrame(cols, index=frame.index)


def lightgbm_array(
    frame: pd.DataFrame, feature_names: list[str], categories: dict[str, list[str]]
) -> np.ndarray:
    """`lightgbm_matrix` as the float array LightGBM converts it to (category codes of the training categories,
    NaN for missing or unseen): built once, so predicting skips the frame build and LightGBM's own copy."""
    out = np.empty((len(frame), len(feature_names)), dtype=np.float64, order="F")
    cols = [frame[name] for name in feature_names]  # in this thread: the frame's item cache is not shared

    def fill(columns: range) -> None:
        for j in columns:
            name, col = feature_names[j], cols[j]
            if name in categories:
                codes = with_categories(col, categories[name]).cat.codes.to_numpy()
                out[:, j] = codes
                out[codes < 0, j] = np.nan
            elif col.dtype.kind in "fiub" and not isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
                out[:, j] = col.to_numpy()  # numpy casts straight into the column, no float64 temporary
            else:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    # The cost is first-touching the new array's pages (~600 MB for 1M rows), not the copying: one thread per
    # core fills its share of the columns (numpy's copies release the GIL), which faults the pages in parallel.
    threads = max(1, min(compute_threads(len(frame)), len(feature_names)))
    if threads == 1:
        fill(range(len(feature_names)))
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fill, [range(t, len(feature_names), threads) for t in range(threads)]))
    return out


_SMALL_TRAINING_ROWS = 50_000


def compute_threads(rows: int, configured: int = 0) -> int:
    """Threads for LightGBM / BLAS: the configured number, else 1 for small data (thread start-up and spinning
    cost more than they save there, badly so on a busy machine), else every core."""
    if configured > 0:
        return configured
    return 1 if rows < _SMALL_TRAINING_ROWS else max(1, os.cpu_count() or 1)


def lightgbm_params(cfg: LightGBMConfig, seed: int, rows: int = _SMALL_TRAINING_ROWS) -> dict:
    """LightGBM parameters of a config section (deterministic for a given seed)."""
    return {
        "num_threads": compute_threads(rows, cfg.num_threads),
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "num_leaves": cfg.num_leaves,
        "max_depth": cfg.max_depth,
        "learning_rate": cfg.learning_rate,
        "min_data_in_leaf": cfg.min_child_samples,
        "bagging_fraction": cfg.subsample,
        "bagging_freq": 1 if cfg.subsample < 1 else 0,
        "feature_fraction": cfg.colsample_bytree,
        "lambda_l2": cfg.reg_lambda,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def train_lightgbm(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    feature_names: list[str],
    categorical_features: list[str],
    cfg: LightGBMConfig,
    seed: int,
) -> LightGBMFit:
    """Fit a booster on `train`, early-stopped on `valid` log loss, truncated to its best iteration."""
    check_features(train, feature_names, "train")
    check_features(valid, feature_names, "validation")
    start = time.perf_counter()
    categories = training_categories(train, categorical_features)
    params = lightgbm_params(cfg, seed, len(train))
    train_ds = lgb.Dataset(
        lightgbm_matrix(train, feature_names, categories),
        label=train["label"].to_numpy(dtype=np.float64),
        categorical_feature=list(categorical_features),
        free_raw_data=True,
    )
    valid_ds = lgb.Dataset(
        lightgbm_matrix(valid, feature_names, categories),
        label=valid["label"].to_numpy(dtype=np.float64),
        reference=train_ds,
        categorical_feature=list(categorical_features),
    )
    record: dict = {}
    booster = lgb.train(
        params,
        train_ds,
        num_boost_round=cfg.n_estimators,
        valid_sets=[valid_ds],
        valid_names=["valid"],
        callbacks=[
            lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False),
            lgb.record_evaluation(record),
        ],
    )
    best = booster.best_iteration or booster.current_iteration()
    # a fresh booster from the truncated model text: no ambiguity about which iteration predict() uses
    final = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    curve = {k: [float(v) for v in vals] for k, vals in record.get("valid", {}).items()}
    valid_metrics = {k: vals[best - 1] for k, vals in curve.items() if len(vals) >= best}
    return LightGBMFit(
        booster=final,
        params={
            **params,
            "num_boost_round": cfg.n_estimators,
            "early_stopping_rounds": cfg.early_stopping_rounds,
        },
        best_iteration=int(best),
        categories=categories,
        valid_metrics=valid_metrics,
        curve=curve,
        seconds=time.perf_counter() - start,
    )


def predict_raw(fit: LightGBMFit, frame: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    """Uncalibrated booster probabilities."""
    return fit.booster.predict(lightgbm_matrix(frame, feature_names, fit.categories))


def tune_lightgbm(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    feature_names: list[str],
    categorical_features: list[str],
    cfg: ModelConfig,
    on_trial=None,
) -> TuningResult:
    """Random search: the configured params plus `cfg.tuning_trials` sampled ones, each early-stopped and
    scored on validation by `cfg.promotion_metric`; the best one wins."""
    rng = np.random.default_rng(cfg.seed)
    candidates = [cfg.lightgbm]
    for _ in range(cfg.tuning_trials):
        sampled = {k: v[int(rng.integers(len(v)))] for k, v in SEARCH_SPACE.items()}
        candidates.append(cfg.lightgbm.model_copy(update=sampled))
    metric = cfg.promotion_metric
    rows, best_fit, best_cfg, best_value = [], None, None, None
    for i, cand in enumerate(candidates):
        fit = train_lightgbm(train, valid, feature_names, categorical_features, cand, cfg.seed)
        raw = predict_raw(fit, valid, feature_names)
        value = evaluate.classification_metrics(valid["label"].to_numpy(), raw, 10.0)[metric]
        rows.append(
            {
                "trial": i,
                **{k: getattr(cand, k) for k in SEARCH_SPACE},
                "best_iteration": fit.best_iteration,
                f"valid_{metric}": value,
            }
        )
        if best_value is None or evaluate.better(metric, value, best_value):
            best_fit, best_cfg, best_value = fit, cand, value
        if on_trial is not None:
            on_trial(i, len(candidates))
    return TuningResult(best=best_fit, best_config=best_cfg, trials=pd.DataFrame(rows))


def _finite_floats(x):
    arr = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(arr), arr, np.nan)


def _category_text(x: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [categorical_as_strings(x[c]).fillna(_MISSING_TEXT).to_numpy(dtype=object) for c in x.columns]
    )


def train_baseline(
    train: pd.DataFrame, feature_names: list[str], categorical_features: list[str], seed: int
) -> Pipeline:
    """Logistic regression: numbers median-imputed (+ missing indicators) and scaled, categories one-hot."""
    check_features(train, feature_names, "train")
    cats = [f for f in feature_names if f in set(categorical_features)]
    nums = [f for f in feature_names if f not in set(categorical_features)]
    transformers = []
    if nums:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("finite", FunctionTransformer(_finite_floats)),
                        (
                            "impute",
                            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                        ),
                        ("scale", StandardScaler()),
                    ]
                ),
                nums,
            )
        )
    if cats:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("text", FunctionTransformer(_category_text)),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                cats,
            )
        )
    model = Pipeline(
        [
            ("prepare", ColumnTransformer(transformers)),
            ("logistic", LogisticRegression(max_iter=2000, random_state=seed)),
        ]
    )
    with threadpool_limits(limits=compute_threads(len(train)), user_api="blas"):
        return model.fit(train[feature_names], train["label"].to_numpy(dtype=np.int64))


def predict_baseline(model: Pipeline, frame: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    """Baseline churn probabilities."""
    return model.predict_proba(frame[feature_names])[:, 1]
