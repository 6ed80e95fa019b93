"""Candidate models behind one interface, chosen by name from one registry (`CANDIDATES`).

Every candidate works on the same float matrix (`churn_pipeline.models.training.lightgbm_array`: numbers as floats, categoricals
as codes of the training categories, NaN for missing or unseen) and yields, once fitted, raw log-odds and
per-feature contributions in log-odds that sum with a bias column to those log-odds, so the reasons of
`models.reasons` work whatever candidate wins:

- `lightgbm`: gradient-boosted trees (native categoricals, early stopping); contributions from
  `models.explain` (TreeSHAP or the tree-path attribution); settings sized to the data, optionally tuned
  with Optuna.
- `logistic`: L2 logistic regression on an encoding that suits churn data: numbers as quantile bins (one-hot,
  with their own bin for missing values) plus a standardised signed-log linear term, categoricals one-hot
  (missing/unseen as their own level); C chosen on validation. A feature's contribution is the sum of
  coefficient x (encoded value - its training mean) over the feature's encoded columns.
- `blend`: w x lightgbm + (1 - w) x logistic on the log-odds scale, w chosen on validation; contributions
  are the same weighted sum of the members' contributions.

Adding a model type is one new subclass of `Candidate` decorated with `@register`.
"""

from __future__ import annotations

import logging
import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from churn_pipeline.core.config import LightGBMConfig, ModelConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.models import evaluate, explain

log = logging.getLogger(__name__)

CANDIDATES: dict[str, type[Candidate]] = {}


def register(cls: type[Candidate]) -> type[Candidate]:
    """Class decorator: make a candidate available by its `name` in `model.candidates`."""
    CANDIDATES[cls.name] = cls
    return cls


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Probabilities of log-odds."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@dataclass(frozen=True)
class Schema:
    """The columns of the candidates' matrix: names, and the number of training categories of categoricals."""

    feature_names: list[str]
    n_categories: dict[int, int]  # column position -> number of categories (codes 0..n-1)

    @property
    def categorical_index(self) -> list[int]:
        return sorted(self.n_categories)


@dataclass
class Context:
    """What every candidate gets besides the data: the schema, the model config and the metric to choose by."""

    schema: Schema
    cfg: ModelConfig
    list_size_pct: float = 10.0
    # log(sampling rate) when non-churners are sampled for fitting: added to the fits' log-odds where they are
    # evaluated on unsampled rows during training (LightGBM's early stopping); 0 = no sampling
    log_odds_offset: float = 0.0

    @property
    def metric(self) -> str:
        return self.cfg.promotion_metric

    def score(self, y: np.ndarray, log_odds: np.ndarray) -> float:
        """The promotion metric of log-odds on labels (higher or lower is better by `evaluate.better`)."""
        return evaluate.classification_metrics(y, sigmoid(log_odds), self.list_size_pct)[self.metric]


Fold = tuple[np.ndarray, np.ndarray]  # (training positions, validation positions)


class Fitted(ABC):
    """A fitted candidate: what the registered model holds. Picklable."""

    name: str

    @abstractmethod
    def log_odds(self, x: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) log-odds of churn per row of the matrix."""

    @abstractmethod
    def contributions(self, x: np.ndarray, method: explain.Attribution = "treeshap") -> np.ndarray:
        """(rows, features + 1) log-odds contributions; the last column is the bias; rows sum to `log_odds`.
        `method` matters for trees only."""

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) churn probabilities."""
        return sigmoid(self.log_odds(x))

    @property
    def booster(self) -> lgb.Booster | None:
        """The LightGBM booster when the model is (or contains) one."""
        return None

    def importance(self, contrib: pd.DataFrame) -> pd.DataFrame:
        """Per feature mean |contribution| (and split gain for trees), largest first."""
        table = pd.DataFrame(
            {"feature": list(contrib.columns), "mean_abs_contribution": contrib.abs().mean().to_numpy()}
        )
        return table.sort_values("mean_abs_contribution", ascending=False, kind="stable").reset_index(
            drop=True
        )

    def describe(self) -> dict:
        """Settings worth logging (JSON-serialisable)."""
        return {}


@dataclass
class Developed:
    """One candidate after selection: its settings, the trials table of its search, its fits on the folds and
    its validation (out-of-fold) log-odds, NaN on rows no fold validated."""

    name: str
    settings: dict
    fold_fits: list[Fitted]
    oof: np.ndarray
    trials: pd.DataFrame | None = None
    note: str = ""


class Candidate(ABC):
    """A model type. `develop` chooses its settings on the folds; `fit` trains it with given settings."""

    name: ClassVar[str]
    members: ClassVar[tuple[str, ...]] = ()  # a combiner of other candidates (blend) lists them here

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def develop(self, x: np.ndarray, y: np.ndarray, folds: list[Fold]) -> Developed:
        """Settings chosen on the folds; default: the default settings, fitted on each fold."""
        settings = self.default_settings(x, y, folds)
        fits, oof = fit_folds(self, x, y, folds, settings)
        return Developed(self.name, settings, fits, oof)

    def default_settings(self, x: np.ndarray, y: np.ndarray, folds: list[Fold]) -> dict:
        return {}

    @abstractmethod
    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        settings: dict,
        valid: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Fitted:
        """Train with `settings`; `valid` (x, y) is for early stopping where the model has it."""

    def refit_settings(self, dev: Developed, ratio: float) -> dict:
        """Settings of the final fit on all development rows (`ratio` = those rows / a fold's training rows)."""
        return dict(dev.settings)

    def refit(self, x: np.ndarray, y: np.ndarray, dev: Developed, ratio: float) -> tuple[dict, Fitted]:
        """The final fit on all development rows and its settings."""
        settings = self.refit_settings(dev, ratio)
        return settings, self.fit(x, y, settings)

    # combiners only
    def combine(self, members: dict[str, Developed], y: np.ndarray, rows: np.ndarray) -> Developed:
        raise NotImplementedError

    def assemble(self, members: dict[str, Fitted], settings: dict) -> Fitted:
        raise NotImplementedError


def fit_folds(
    cand: Candidate, x: np.ndarray, y: np.ndarray, folds: list[Fold], settings: dict
) -> tuple[list[Fitted], np.ndarray]:
    """`cand` fitted on each fold's training rows (early-stopped on its validation rows) and the
    out-of-fold log-odds."""
    oof = np.full(len(y), np.nan)
    fits = []
    for tr, va in folds:
        fit = cand.fit(x[tr], y[tr], settings, valid=(x[va], y[va]))
        oof[va] = fit.log_odds(x[va])
        fits.append(fit)
    return fits, oof


# ---------------------------------------------------------------------------------------------- LightGBM
def _threads(rows: int, configured: int) -> int:
    from churn_pipeline.models.training import compute_threads

    return compute_threads(rows, configured)


def scaled_params(cfg: LightGBMConfig, rows: int, positives: int) -> dict:
    """`min_child_samples` and `num_leaves` where the config leaves them null, sized to the training data: a
    leaf should hold a few churners (2 x rows / positives) and grow with the data (sqrt(rows) / 4), within
    10..200; at most positives / 20 leaves, within 7..31."""
    positives = max(int(positives), 1)
    min_child = cfg.min_child_samples
    if min_child is None:
        min_child = int(np.clip(round(max(math.sqrt(rows) / 4, 2 * rows / positives)), 10, 200))
    leaves = cfg.num_leaves
    if leaves is None:
        leaves = int(np.clip(positives // 20, 7, 31))
    return {
        "num_leaves": leaves,
        "max_depth": cfg.max_depth,
        "learning_rate": cfg.learning_rate,
        "min_child_samples": min_child,
        "subsample": cfg.subsample,
        "colsample_bytree": cfg.colsample_bytree,
        "reg_lambda": cfg.reg_lambda,
    }


def lightgbm_params(settings: dict, cfg: LightGBMConfig, seed: int, rows: int) -> dict:
    """LightGBM's own parameter names for candidate settings (deterministic for a given seed)."""
    return {
        "num_threads": _threads(rows, cfg.num_threads),
        "objective": "binary",
        "metric": ["binary_logloss"],
        "num_leaves": int(settings["num_leaves"]),
        "max_depth": int(settings["max_depth"]),
        "learning_rate": float(settings["learning_rate"]),
        "min_data_in_leaf": int(settings["min_child_samples"]),
        "bagging_fraction": float(settings["subsample"]),
        "bagging_freq": 1 if settings["subsample"] < 1 else 0,
        "feature_fraction": float(settings["colsample_bytree"]),
        "lambda_l2": float(settings["reg_lambda"]),
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "feature_pre_filter": False,  # min_data_in_leaf varies between trials on the same Dataset
        "verbosity": -1,
    }


@dataclass
class LightGBMFitted(Fitted):
    """A booster (truncated to its best iteration) and how it was trained."""

    model: lgb.Booster
    best_iteration: int
    settings: dict
    curve: list[float] = field(default_factory=list)  # validation log loss per iteration (early-stopped fits)
    name: str = "lightgbm"

    @property
    def booster(self) -> lgb.Booster:
        return self.model

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x, raw_score=True)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)  # LightGBM's own sigmoid (bit-identical to the booster's probabilities)

    def contributions(self, x: np.ndarray, method: explain.Attribution = "treeshap") -> np.ndarray:
        if method == "treeshap":
            return np.asarray(self.model.predict(x, pred_contrib=True))
        if method == "path":
            return explain.path_contributions(self.model, x)
        raise ValueError(f"unknown attribution method {method!r}: use 'treeshap' or 'path'")

    def importance(self, contrib: pd.DataFrame) -> pd.DataFrame:
        return explain.global_importance(self.model, contrib)

    def describe(self) -> dict:
        return {**self.settings, "best_iteration": self.best_iteration}


class _Datasets:
    """LightGBM Datasets of one fold, binned once and reused by every trial of a search."""

    def __init__(self, x_tr, y_tr, valid, schema: Schema, valid_offset: float = 0.0):
        common = {
            "categorical_feature": schema.categorical_index,
            "feature_name": list(schema.feature_names),
            # the binned Dataset is all training needs (trials change no binning parameter): the raw rows,
            # often a copy made for the fold, are dropped once it is constructed
            "free_raw_data": True,
        }
        self.train = lgb.Dataset(x_tr, y_tr, params={"verbosity": -1}, **common)
        self.valid = None
        if valid is not None:
            init = np.full(len(valid[1]), valid_offset) if valid_offset else None
            self.valid = lgb.Dataset(valid[0], valid[1], reference=self.train, init_score=init, **common)
        self.rows = len(y_tr)


@register
class LightGBMCandidate(Candidate):
    name = "lightgbm"

    def default_settings(self, x, y, folds) -> dict:
        rows = int(np.mean([len(tr) for tr, _ in folds])) if folds else len(y)
        positives = int(np.mean([y[tr].sum() for tr, _ in folds])) if folds else int(y.sum())
        return {
            **scaled_params(self.ctx.cfg.lightgbm, rows, positives),
            "n_estimators": self.ctx.cfg.lightgbm.n_estimators,
        }

    def _train(self, data: _Datasets, settings: dict) -> LightGBMFitted:
        cfg = self.ctx.cfg.lightgbm
        params = lightgbm_params(settings, cfg, self.ctx.cfg.seed, data.rows)
        record: dict = {}
        callbacks = []
        valid_sets = []
        if data.valid is not None:
            valid_sets = [data.valid]
            callbacks = [
                lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False),
                lgb.record_evaluation(record),
            ]
        with warnings.catch_warnings():
            # the validation Dataset shares the training one's bins; LightGBM warns that it does
            warnings.filterwarnings("ignore", message="Overriding the parameters from Reference Dataset")
            booster = lgb.train(
                params,
                data.train,
                num_boost_round=int(settings["n_estimators"]),
                valid_sets=valid_sets,
                valid_names=["valid"] if valid_sets else None,
                callbacks=callbacks,
            )
        best = (
            (booster.best_iteration or booster.current_iteration())
            if valid_sets
            else booster.current_iteration()
        )
        # a fresh booster from the truncated model text: no ambiguity about which iteration predict() uses
        final = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        curve = [float(v) for v in record.get("valid", {}).get("binary_logloss", [])]
        return LightGBMFitted(model=final, best_iteration=int(best), settings=dict(settings), curve=curve)

    def fit(self, x, y, settings, valid=None) -> LightGBMFitted:
        return self._train(_Datasets(x, y, valid, self.ctx.schema, self.ctx.log_odds_offset), settings)

    def develop(self, x, y, folds) -> Developed:
        from churn_pipeline.models.tuning import tune_lightgbm

        datasets = [
            _Datasets(x[tr], y[tr], (x[va], y[va]), self.ctx.schema, self.ctx.log_odds_offset)
            for tr, va in folds
        ]
        base = self.default_settings(x, y, folds)

        def run(settings: dict) -> tuple[list[Fitted], np.ndarray]:
            oof = np.full(len(y), np.nan)
            fits = []
            for (_, va), data in zip(folds, datasets, strict=True):
                fit = self._train(data, settings)
                oof[va] = fit.log_odds(x[va])
                fits.append(fit)
            return fits, oof

        tuning = self.ctx.cfg.tuning
        dev_rows = len(y)
        note = ""
        if tuning.trials > 0 and (tuning.max_rows == 0 or dev_rows <= tuning.max_rows):
            rows = np.concatenate([va for _, va in folds])
            result = tune_lightgbm(base, run, lambda oof: self.ctx.score(y[rows], oof[rows]), self.ctx)
            note = f"Optuna: {len(result.trials)} trial(s) in {result.seconds:.1f} s" + (
                " (stopped by model.tuning.seconds)" if result.timed_out else ""
            )
            return Developed(self.name, result.settings, result.fits, result.oof, result.trials, note)
        if tuning.trials > 0:
            note = (
                f"tuning skipped: {dev_rows:,} development rows > model.tuning.max_rows {tuning.max_rows:,}; "
                f"settings sized to the data"
            )
        fits, oof = run(base)
        return Developed(self.name, base, fits, oof, None, note)

    def refit_settings(self, dev: Developed, ratio: float) -> dict:
        # the early-stopped rounds, scaled up for the larger refit set (more rows support more trees)
        best = float(np.mean([f.best_iteration for f in dev.fold_fits]))
        return {**dev.settings, "n_estimators": max(1, int(round(best * ratio)))}


# ---------------------------------------------------------------------------------------------- logistic
_BINS = 6
_C_GRID = (0.01, 0.1, 1.0)  # warm-started path, strongest regularisation first


@dataclass
class _Encoding:
    """Fitted encoding of the matrix for the logistic model (see the module docstring)."""

    kinds: list[str]  # per feature: "cat" | "num"
    edges: list[np.ndarray | None]  # numeric bin edges
    levels: list[int]  # one-hot levels per feature (incl. the missing level)
    lin_center: np.ndarray  # per feature: mean / sd of the signed-log value (numbers only)
    lin_scale: np.ndarray
    lin_lo: np.ndarray
    lin_hi: np.ndarray
    offsets: np.ndarray  # start of each feature's one-hot block
    n_onehot: int
    numeric: np.ndarray  # positions of numeric features (their linear terms follow the one-hot blocks)

    @property
    def width(self) -> int:
        return self.n_onehot + len(self.numeric)

    def owner(self) -> np.ndarray:
        """Feature position of every encoded column."""
        out = np.repeat(np.arange(len(self.levels)), self.levels)
        return np.concatenate([out, self.numeric]).astype(np.int64)

    def transform(self, x: np.ndarray) -> sparse.csr_matrix:
        n, f = x.shape
        m = len(self.numeric)
        width = f + m
        # one row = its f one-hot entries then its m linear terms: the CSR arrays are filled in place, one
        # feature at a time (no n x width temporaries); int32 indices while they fit
        itype = np.int32 if max(self.width, n * width) < np.iinfo(np.int32).max else np.int64
        indices = np.empty((n, width), dtype=itype)
        data = np.ones((n, width), dtype=np.float64)
        for j in range(f):  # a loop over the (few) features; every step is vectorised over customers
            col = x[:, j]
            miss = ~np.isfinite(col)
            if self.kinds[j] == "cat":
                codes = np.where(miss, 0, col).astype(np.int64)
                bad = miss | (codes < 0) | (codes >= self.levels[j] - 1)
                level = np.where(bad, self.levels[j] - 1, codes)
            else:
                edges = self.edges[j]
                # edges learnt on float32 rows: compare float32 values, so float64 input bins as in training
                v = np.where(miss, 0.0, col).astype(edges.dtype, copy=False)
                level = np.where(miss, self.levels[j] - 1, np.searchsorted(edges, v, side="right"))
            indices[:, j] = level + self.offsets[j]
        for k, j in enumerate(self.numeric):
            lin = np.clip(_signed_log(x[:, j]), self.lin_lo[k], self.lin_hi[k])
            data[:, f + k] = np.where(np.isfinite(lin), (lin - self.lin_center[k]) / self.lin_scale[k], 0.0)
            indices[:, f + k] = self.n_onehot + k
        indptr = np.arange(0, n * width + 1, width, dtype=itype)
        return sparse.csr_matrix((data.ravel(), indices.ravel(), indptr), shape=(n, self.width))


def _signed_log(v: np.ndarray) -> np.ndarray:
    """sign(v) x log(1 + |v|) (NaN stays NaN), in place on a fresh C-ordered copy of `v`."""
    out = np.ascontiguousarray(v, dtype=np.float64).copy()
    with np.errstate(invalid="ignore"):
        np.abs(out, out=out)
        np.log1p(out, out=out)
        np.copysign(out, v, out=out)
    return out


def fit_encoding(x: np.ndarray, schema: Schema, bins: int = _BINS) -> _Encoding:
    """Quantile bins (+ a missing bin) and signed-log linear terms of the numbers, one-hot categoricals."""
    f = x.shape[1]
    kinds, edges, levels = [], [], []
    numeric = [j for j in range(f) if j not in schema.n_categories]
    for j in range(f):
        if j in schema.n_categories:
            kinds.append("cat")
            edges.append(None)
            levels.append(schema.n_categories[j] + 1)  # + missing/unseen
            continue
        col = x[:, j]
        finite = col[np.isfinite(col)]
        q = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if finite.size else np.array([])
        # edges in the matrix's precision (`transform` compares values in it)
        e = np.unique(q.astype(x.dtype if x.dtype == np.float32 else np.float64))
        kinds.append("num")
        edges.append(e)
        levels.append(len(e) + 2)  # bins + missing
    # statistics of the signed-log terms one column at a time: nanmean/nanstd copy their input several times,
    # which for all columns at once was the logistic candidate's peak memory
    stats = np.zeros((4, len(numeric)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: its statistics are 0
        for k, j in enumerate(numeric):
            lin = _signed_log(x[:, j])
            lin[np.isinf(lin)] = np.nan  # infinite inputs count as missing, like in `transform`
            stats[:, k] = np.nanmin(lin), np.nanmax(lin), np.nanmean(lin), np.nanstd(lin)
    lo, hi = stats[0], stats[1]
    center, scale = np.nan_to_num(stats[2]), np.nan_to_num(stats[3])
    scale[scale == 0] = 1.0
    offsets = np.concatenate([[0], np.cumsum(levels)[:-1]]).astype(np.int64)
    return _Encoding(
        kinds=kinds,
        edges=edges,
        levels=levels,
        lin_center=center,
        lin_scale=scale,
        lin_lo=np.nan_to_num(lo, nan=0.0),
        lin_hi=np.nan_to_num(hi, nan=0.0),
        offsets=offsets,
        n_onehot=int(sum(levels)),
        numeric=np.asarray(numeric, dtype=np.int64),
    )


@dataclass
class LogisticFitted(Fitted):
    encoding: _Encoding
    coef: np.ndarray
    intercept: float
    means: np.ndarray  # training mean of every encoded column (contributions are centred on them)
    c: float
    name: str = "logistic"

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.encoding.transform(x) @ self.coef).ravel() + self.intercept

    def contributions(self, x: np.ndarray, method: explain.Attribution = "treeshap") -> np.ndarray:
        z = self.encoding.transform(x)
        n, f = x.shape[0], x.shape[1]
        owner = self.encoding.owner()
        # per-feature sum of coef x (value - mean): a sparse (encoded column -> feature) aggregation
        agg = sparse.csr_matrix((self.coef, (np.arange(len(owner)), owner)), shape=(len(owner), f))
        out = np.empty((n, f + 1))
        out[:, :f] = np.asarray((z @ agg).todense()) - np.asarray(self.means @ agg).ravel()[None, :]
        out[:, f] = self.intercept + float(self.means @ self.coef)
        return out

    def describe(self) -> dict:
        return {"C": self.c, "encoded_columns": int(self.encoding.width)}


def _logistic(c: float, seed: int) -> LogisticRegression:
    # tol 1e-3: on the demo 14 instead of 62 L-BFGS iterations for the same validation PR-AUC (0.141)
    return LogisticRegression(C=c, max_iter=300, tol=1e-3, random_state=seed, warm_start=True)


@register
class LogisticCandidate(Candidate):
    name = "logistic"

    def _path(self, x, y, valid_x=None) -> tuple[_Encoding, np.ndarray, list, list]:
        """Encoding fitted on (x, y), its column means and the regularisation path over the C grid
        (warm-started, strongest first); with `valid_x`, the validation log-odds of every C."""
        enc = fit_encoding(x, self.ctx.schema)
        z = enc.transform(x)
        means = np.asarray(z.mean(axis=0)).ravel()
        zv = enc.transform(valid_x) if valid_x is not None else None
        model = _logistic(_C_GRID[0], self.ctx.cfg.seed)
        path, preds = [], []
        with threadpool_limits(limits=_threads(len(y), 0), user_api="blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*did not converge.*|.*max_iter.*")
            for c in _C_GRID:
                model.set_params(C=c)
                model.fit(z, y)
                path.append((c, model.coef_.ravel().copy(), float(model.intercept_[0])))
                if zv is not None:
                    preds.append(np.asarray(zv @ path[-1][1]).ravel() + path[-1][2])
        return enc, means, path, preds

    def fit(self, x, y, settings, valid=None, start: LogisticFitted | None = None) -> LogisticFitted:
        enc = fit_encoding(x, self.ctx.schema) if start is None else start.encoding
        z = enc.transform(x)
        model = _logistic(float(settings["C"]), self.ctx.cfg.seed)
        if start is not None:  # warm start from a fit with the same encoding
            model.coef_ = start.coef[None, :].copy()
            model.intercept_ = np.array([start.intercept])
        with threadpool_limits(limits=_threads(len(y), 0), user_api="blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*did not converge.*|.*max_iter.*")
            model.fit(z, y)
        return LogisticFitted(
            encoding=enc,
            coef=model.coef_.ravel(),
            intercept=float(model.intercept_[0]),
            means=np.asarray(z.mean(axis=0)).ravel(),
            c=float(settings["C"]),
        )

    def develop(self, x, y, folds) -> Developed:
        oof_by_c = np.full((len(_C_GRID), len(y)), np.nan)
        fold_paths = []
        for tr, va in folds:
            enc, means, path, preds = self._path(x[tr], y[tr], x[va])
            fold_paths.append((enc, means, path))
            for i, p in enumerate(preds):
                oof_by_c[i, va] = p
        rows = np.concatenate([va for _, va in folds])
        scores = [self.ctx.score(y[rows], oof_by_c[i, rows]) for i in range(len(_C_GRID))]
        best = 0
        for i in range(1, len(_C_GRID)):
            if evaluate.better(self.ctx.metric, scores[i], scores[best]):
                best = i
        fits = [
            LogisticFitted(
                encoding=enc, coef=path[best][1], intercept=path[best][2], means=means, c=path[best][0]
            )
            for enc, means, path in fold_paths
        ]
        trials = pd.DataFrame({"C": list(_C_GRID), f"valid_{self.ctx.metric}": scores})
        return Developed(
            self.name,
            {"C": _C_GRID[best]},
            fits,
            oof_by_c[best],
            trials,
            f"C={_C_GRID[best]:g} on validation",
        )

    def refit(self, x, y, dev: Developed, ratio: float) -> tuple[dict, Fitted]:
        # Out of time (one fold) the refit keeps the training rows' bins and starts from their coefficients:
        # a few L-BFGS iterations instead of a fit from zero; the centring means are the refit rows' own.
        start = dev.fold_fits[0] if len(dev.fold_fits) == 1 else None
        settings = self.refit_settings(dev, ratio)
        return settings, self.fit(x, y, settings, start=start)


# ------------------------------------------------------------------------------------------------- blend
_WEIGHTS = np.round(np.linspace(0.0, 1.0, 11), 2)


@dataclass
class BlendFitted(Fitted):
    parts: dict[str, Fitted]
    weights: dict[str, float]
    name: str = "blend"

    @property
    def booster(self) -> lgb.Booster | None:
        for part in self.parts.values():
            if part.booster is not None:
                return part.booster
        return None

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        return sum(w * self.parts[k].log_odds(x) for k, w in self.weights.items())

    def contributions(self, x: np.ndarray, method: explain.Attribution = "treeshap") -> np.ndarray:
        return sum(w * self.parts[k].contributions(x, method) for k, w in self.weights.items())

    def describe(self) -> dict:
        return {"weights": dict(self.weights)}


@register
class BlendCandidate(Candidate):
    """w x lightgbm + (1 - w) x logistic log-odds; w on a 0.1 grid chosen on the validation predictions."""

    name = "blend"
    members = ("lightgbm", "logistic")

    def fit(self, x, y, settings, valid=None) -> Fitted:
        raise NotImplementedError("a blend is assembled from its fitted members")

    def combine(self, members: dict[str, Developed], y: np.ndarray, rows: np.ndarray) -> Developed:
        a, b = (members[m].oof for m in self.members)
        scores = [self.ctx.score(y[rows], w * a[rows] + (1 - w) * b[rows]) for w in _WEIGHTS]
        best = 0
        for i in range(1, len(_WEIGHTS)):
            if evaluate.better(self.ctx.metric, scores[i], scores[best]):
                best = i
        w = float(_WEIGHTS[best])
        weights = {self.members[0]: w, self.members[1]: round(1 - w, 2)}
        fits = [
            self.assemble({m: members[m].fold_fits[i] for m in self.members}, {"weights": weights})
            for i in range(len(members[self.members[0]].fold_fits))
        ]
        trials = pd.DataFrame({f"weight_{self.members[0]}": _WEIGHTS, f"valid_{self.ctx.metric}": scores})
        return Developed(
            self.name,
            {"weights": weights},
            fits,
            w * a + (1 - w) * b,
            trials,
            f"weights {weights} on validation",
        )

    def assemble(self, members: dict[str, Fitted], settings: dict) -> Fitted:
        return BlendFitted(parts=dict(members), weights=dict(settings["weights"]))


# ------------------------------------------------------------------------------------------ the selection
REFIT_ALL_MAX_ROWS = 50_000


def resolve(names: tuple[str, ...] | list[str]) -> list[str]:
    """The configured candidates, each after the members it combines; unknown names are a ConfigError."""
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ConfigError(
            f"model.candidates: unknown candidate(s) {unknown}; available: {sorted(CANDIDATES)}"
        )
    order: list[str] = []
    for n in names:
        for m in (*CANDIDATES[n].members, n):
            if m not in order:
                order.append(m)
    return order


@dataclass
class Selection:
    """Every candidate developed on the folds, the chosen one and why, and the final fits on all rows."""

    developed: dict[str, Developed]
    valid_rows: np.ndarray  # positions validated by some fold
    valid_metrics: dict[str, dict[str, float]]  # candidate -> metrics of its raw validation probabilities
    chosen: str
    reason: str
    final: dict[str, Fitted]  # refit on all development rows with the chosen settings
    refit_settings: dict[str, dict]
    listed: list[str]  # the configured candidates (members developed only for a blend are not listed)


def select(
    x: np.ndarray,
    y: np.ndarray,
    folds: list[Fold],
    ctx: Context,
    refit: bool = True,
    on_step=None,
    refit_rows: np.ndarray | None = None,
) -> Selection:
    """Develop every configured candidate on `folds`, choose the best on the validation rows by the promotion
    metric (ties: the first listed), and refit every candidate on all rows with its chosen settings (above
    `REFIT_ALL_MAX_ROWS` rows only the chosen one and the members it combines; with `refit=False` none: the
    first fold's fits are kept). `refit_rows`: the positions the final fits train on (default all; sampled
    non-churners leave some validation rows out of the refit)."""
    listed = list(ctx.cfg.candidates)
    order = resolve(listed)
    rows = np.unique(np.concatenate([va for _, va in folds]))
    developed: dict[str, Developed] = {}
    for name in order:
        cand = CANDIDATES[name](ctx)
        if on_step is not None:
            on_step(f"developing {name}")
        if cand.members:
            developed[name] = cand.combine({m: developed[m] for m in cand.members}, y, rows)
        else:
            developed[name] = cand.develop(x, y, folds)
    valid_metrics = {
        n: evaluate.classification_metrics(y[rows], sigmoid(developed[n].oof[rows]), ctx.list_size_pct)
        for n in order
    }
    metric = ctx.metric
    # A later-listed candidate must win by more than model.selection_margin: near-ties go to the earlier, simpler
    # one (a blend costs both members at scoring: on the 1M-customer benchmark a blend 0.6% better on
    # validation PR-AUC than LightGBM doubled the predict step, 5-7 s -> 12 s of a 30 s budget).
    margin = ctx.cfg.selection_margin
    chosen, best = listed[0], listed[0]
    for n in listed[1:]:
        if evaluate.better(metric, valid_metrics[n][metric], valid_metrics[chosen][metric], margin):
            chosen = n
        if evaluate.better(metric, valid_metrics[n][metric], valid_metrics[best][metric]):
            best = n
    others = ", ".join(f"{n} {valid_metrics[n][metric]:.4f}" for n in listed if n != chosen)
    kind = "out-of-fold" if len(folds) > 1 else "validation"
    reason = f"best {kind} {metric}: {chosen} {valid_metrics[chosen][metric]:.4f}" + (
        f" vs {others}" if others else ""
    )
    if best != chosen:
        reason += (
            f" ({best} is within model.selection_margin {margin:.0%} of {chosen}: the earlier listed is kept)"
        )

    final: dict[str, Fitted] = {}
    refit_settings: dict[str, dict] = {}
    train_rows = np.mean([len(tr) for tr, _ in folds])
    n_refit = len(y) if refit_rows is None else len(refit_rows)
    ratio = n_refit / train_rows if refit else 1.0
    # On small sets every candidate is refitted, so their test metrics compare like with like; on large ones
    # (where a refit costs seconds) only the chosen one and the members it combines.
    needed = {chosen, *CANDIDATES[chosen].members}
    refit_all = n_refit <= REFIT_ALL_MAX_ROWS
    x_refit, y_refit = (x, y) if refit_rows is None else (x[refit_rows], y[refit_rows])
    for name in order:
        cand = CANDIDATES[name](ctx)
        dev = developed[name]
        if cand.members:
            refit_settings[name] = dict(dev.settings)
            final[name] = cand.assemble({m: final[m] for m in cand.members}, dev.settings)
        elif refit and (refit_all or name in needed):
            if on_step is not None:
                on_step(f"refitting {name}")
            refit_settings[name], final[name] = cand.refit(x_refit, y_refit, dev, ratio)
        else:
            refit_settings[name] = dict(dev.settings)
            final[name] = dev.fold_fits[0]
            if refit:
                dev.note += (
                    f"{'; ' if dev.note else ''}not refitted ({n_refit:,} rows > {REFIT_ALL_MAX_ROWS:,}, not "
                    f"chosen): its test metrics are those of its fit on the first fold's training rows"
                )
    return Selection(
        developed=developed,
        valid_rows=rows,
        valid_metrics=valid_metrics,
        chosen=chosen,
        reason=reason,
        final=final,
        refit_settings=refit_settings,
        listed=listed,
    )
