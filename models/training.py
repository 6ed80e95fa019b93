"""Model fitting: the feature matrix every candidate reads, and `train_candidates` (develop, choose, calibrate
and refit the candidates of `models.candidates` on a split)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_pipeline.core.config import ModelConfig
from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.models.calibration import Calibrator, fit_calibrator
from churn_pipeline.models.candidates import CANDIDATES, Context, Fitted, Schema, Selection, select, sigmoid
from churn_pipeline.models.encoding import observed_categories, with_categories
from churn_pipeline.models.split import Split


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
    frame: pd.DataFrame,
    feature_names: list[str],
    categories: dict[str, list[str]],
    dtype: type[np.floating] = np.float64,
) -> np.ndarray:
    """`lightgbm_matrix` as the float array LightGBM converts it to (category codes of the training categories,
    NaN for missing or unseen): built once, so predicting skips the frame build and LightGBM's own copy.
    Training builds it as float32 (half the memory; LightGBM bins float32 as it is)."""
    out = np.empty((len(frame), len(feature_names)), dtype=dtype, order="F")
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
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=dtype, na_value=np.nan)

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


@dataclass
class Trained:
    """Every candidate developed, chosen and refitted on a split, with a calibrator per candidate fitted on
    its validation (or out-of-fold) predictions."""

    selection: Selection
    schema: Schema
    categories: dict[str, list[str]]
    calibrators: dict[str, Calibrator]
    development_rows: int
    # the rows the calibrators were fitted on: labels, and each candidate's raw log-odds there
    calibration_labels: np.ndarray | None = None
    calibration_scores: dict[str, np.ndarray] | None = None
    seconds: float = 0.0

    @property
    def chosen(self) -> str:
        return self.selection.chosen

    def fitted(self, name: str | None = None) -> Fitted:
        """The final (refitted) model of a candidate, default the chosen one."""
        return self.selection.final[name or self.chosen]

    def predict(self, name: str, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of candidate `name` (final fit) for the rows of `frame`."""
        return self.predict_all(frame, [name])[name]

    def predict_all(self, frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
        """Calibrated probabilities of several candidates, from one feature matrix; a blend reuses its
        members' log-odds."""
        x = lightgbm_array(frame, self.schema.feature_names, self.categories)
        final = self.selection.final
        log_odds: dict[str, np.ndarray] = {}
        for name in self.selection.final:  # members come before the blends that combine them
            fit = final[name]
            weights = getattr(fit, "weights", None)
            if weights is not None and all(m in log_odds for m in weights):
                log_odds[name] = sum(w * log_odds[m] for m, w in weights.items())
            elif name in names or any(name in getattr(final[n], "weights", {}) for n in names):
                log_odds[name] = fit.log_odds(x)
        out = {}
        for name in names:
            fit = final[name]
            # LightGBM's own probabilities are bit-identical to the registered model's predict_raw
            raw = (
                fit.predict_raw(x)
                if fit.booster is not None and fit.name == "lightgbm"
                else sigmoid(log_odds[name])
            )
            out[name] = self.calibrators[name].transform(raw)
        return out


def train_candidates(
    split: Split,
    feature_names: list[str],
    categorical_features: list[str],
    cfg: ModelConfig,
    list_size_pct: float = 10.0,
    on_step=None,
) -> Trained:
    """Develop the configured candidates on the split's folds, choose one by `cfg.promotion_metric` on the
    validation rows, calibrate each on its validation predictions and refit each on all development rows."""
    start = time.perf_counter()
    dev = split.development
    check_features(dev, feature_names, "training")
    categories = training_categories(dev, categorical_features)
    # one float32 matrix of the development rows, shared by every candidate and fold (they index into it)
    x = lightgbm_array(dev, feature_names, categories, dtype=np.float32)
    y = dev["label"].to_numpy(dtype=np.float64)
    schema = Schema(
        list(feature_names),
        {i: len(categories[f]) for i, f in enumerate(feature_names) if f in categories},
    )
    # with sampled non-churners the fits' log-odds are too high by -log(rate): early stopping evaluates the
    # unsampled validation rows shifted back by it; the calibrators below learn the same correction
    ctx = Context(schema, cfg, list_size_pct, log_odds_offset=float(np.log(split.sampling_rate)))
    sel = select(x, y, split.folds, ctx, on_step=on_step, refit_rows=split.refit_rows)
    rows = sel.valid_rows
    # Calibration maps the validation predictions of the fits made before the refit: those are honest
    # (out-of-fold, or out-of-time on the validation snapshots), while the refitted model's own predictions
    # on these rows would be in-sample and over-confident. Out of time this is the same choice as blocked
    # CV by snapshot at a fraction of its cost. When the fold validated on some customers only, every
    # validation-snapshot row is scored by the fold's fit: the known customers at a later date are what the
    # registered model mostly scores, and more rows make a steadier calibration.
    if split.calibration_rows is None:
        calibration_rows = rows
        scores = {name: dev_.oof[rows] for name, dev_ in sel.developed.items()}
    else:
        calibration_rows = split.calibration_rows
        scores = {
            name: dev_.fold_fits[0].log_odds(x[calibration_rows]) for name, dev_ in sel.developed.items()
        }
    calibrators = {
        name: fit_calibrator(sigmoid(z), y[calibration_rows], cfg.calibration) for name, z in scores.items()
    }
    del x
    return Trained(
        selection=sel,
        schema=schema,
        categories=categories,
        calibrators=calibrators,
        development_rows=len(y) if split.refit_rows is None else len(split.refit_rows),
        calibration_labels=y[calibration_rows],
        calibration_scores=scores,
        seconds=time.perf_counter() - start,
    )


def refit_chosen(
    trained: Trained, split: Split, frame: pd.DataFrame, cfg: ModelConfig, list_size_pct: float = 10.0
) -> Fitted:
    """The chosen candidate fitted once more on the labelled rows of `frame` (all of them, test included) with
    the settings chosen on the development rows, scaled like the development refit (LightGBM: its
    early-stopped rounds times the rows over a fold's training rows); a blend refits its members."""
    check_features(frame, trained.schema.feature_names, "final fit")
    x = lightgbm_array(frame, trained.schema.feature_names, trained.categories, dtype=np.float32)
    y = frame["label"].to_numpy(dtype=np.float64)
    ctx = Context(trained.schema, cfg, list_size_pct)
    developed = trained.selection.developed
    ratio = len(y) / float(np.mean([len(tr) for tr, _ in split.folds]))

    def fit(name: str) -> Fitted:
        cand = CANDIDATES[name](ctx)
        if cand.members:
            return cand.assemble({m: fit(m) for m in cand.members}, developed[name].settings)
        return cand.refit(x, y, developed[name], ratio)[1]

    return fit(trained.chosen)
