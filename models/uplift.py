"""Uplift: how much a retention contact lowers a customer's churn probability, learnt from past campaigns
with control groups, and the Qini curve that judges a ranking by it.

The estimator `churn train-uplift` fits is an X-learner (Kuenzel et al. 2019) on LightGBM: one churn classifier
on the held-out (control) customers and one on the contacted (treated) ones, each on the features as of the
campaign's list date; each arm's observed outcomes against the OTHER arm's predictions are imputed individual
effects, regressed on the features per arm, and the two regressions are averaged with the known propensity (the
campaigns' treated share). Why over the T-learner (uplift = the difference of the two classifiers): the effect
(a few points of churn) is small against the churn noise, and differencing two separately fitted classifiers
turns the noise of both into uplift, while a regression aimed at the effect itself ranks it better (README
"Who can be saved" has the measured comparison, with the DR-learner and a regularised T-learner, also here).
Why not a library: scikit-uplift's last release is 0.5.1 (2022), and causalml (0.18, maintained) brings a
compiled build and a large dependency tree for these same estimators, which are a few fits of the LightGBM the
pipeline already uses, with its categorical handling. The ranking is judged out of time on the Qini curve below,
against ranking by risk, before anyone uses it.

Qini curve (Radcliffe 2007), for an outcome we want to prevent: customers sorted by the score, descending; at
each cut the customers saved among the treated so far, control churners scaled to the treated count minus
treated churners. Its area above the random-targeting diagonal, per customer, is the Qini coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from churn_pipeline.models.encoding import coerce_features
from churn_pipeline.models.training import compute_threads, lightgbm_array, training_categories

Estimator = Literal["t", "t_regularised", "x", "dr"]
ESTIMATORS: tuple[Estimator, ...] = get_args(Estimator)
ESTIMATOR_NAMES = {
    "t": "T-learner",
    "t_regularised": "regularised T-learner",
    "x": "X-learner",
    "dr": "DR-learner",
}
CHOSEN_ESTIMATOR: Estimator = "x"  # `churn train-uplift`'s; README "Who can be saved" says why
CROSS_FIT_FOLDS = 2


def learner_params(rows: int, seed: int, *, regularised: bool = False) -> dict:
    """LightGBM settings for each arm: small trees and a floor on leaf size that grows with the data, since
    an arm sees only its half of a few thousand campaign targets and noise in either arm becomes uplift.
    `regularised`: leaves five times larger and stronger shrinkage (the T-learner variant)."""
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 7,
        "min_data_in_leaf": max(200, rows // 20) if regularised else max(40, rows // 100),
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 50.0 if regularised else 10.0,
        "seed": seed,
        "deterministic": True,
        "num_threads": compute_threads(rows),
        "verbosity": -1,
    }


def effect_params(rows: int, seed: int) -> dict:
    """LightGBM settings for regressing imputed effects (X-learner) or pseudo-outcomes (DR-learner): an effect
    of a few points of churn under outcome noise of +-1, so few shallow trees on large leaves."""
    return {
        "objective": "regression",
        "learning_rate": 0.03,
        "num_leaves": 5,
        "min_data_in_leaf": max(100, rows // 40),
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 10.0,
        "seed": seed,
        "deterministic": True,
        "num_threads": compute_threads(rows),
        "verbosity": -1,
    }


class UpliftModel(mlflow.pyfunc.PythonModel):
    """Churn prevented by a contact, per row of a feature frame: the two arms' churn classifiers (the control
    arm's P(churn) is the risk ranking it is judged against), and for the X- and DR-learners the effect
    regressions whose weighted sum is the uplift."""

    def __init__(
        self,
        control: lgb.Booster,
        treated: lgb.Booster,
        feature_names: list[str],
        categories: dict[str, list[str]],
        metadata: dict | None = None,
        *,
        effects: list[lgb.Booster] | None = None,
        effect_weights: list[float] | None = None,
        estimator: str = "t",  # models registered before the X/DR-learners are T-learners
    ):
        self.control = control
        self.treated = treated
        self.feature_names = list(feature_names)
        self.categories = {k: list(v) for k, v in categories.items()}
        self.column_types: dict[str, str] = {}  # read by the registry's serving signature
        self.metadata = dict(metadata or {})
        self.effects = list(effects or [])
        self.effect_weights = list(effect_weights or [])
        self.estimator = estimator

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The features as the boosters read them (training categories, NaN for missing or unseen)."""
        frame = coerce_features(frame, self.feature_names, self.categories)
        return lightgbm_array(frame, self.feature_names, self.categories)

    def churn_probabilities(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """P(churn) if not contacted and if contacted, per row (the arms' classifiers)."""
        x = self.matrix(frame)
        return self.control.predict(x), self.treated.predict(x)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        """Uplift per row: the estimated P(churn | not contacted) - P(churn | contacted); the arms' difference
        for a T-learner, the effect regressions' weighted sum for the X- and DR-learners."""
        effects = getattr(self, "effects", [])  # models registered before the X/DR-learners have none
        if not effects:
            p_not, p_yes = self.churn_probabilities(model_input)
            return np.asarray(p_not - p_yes, dtype=np.float64)
        x = self.matrix(model_input)
        return np.asarray(
            sum(w * b.predict(x) for w, b in zip(self.effect_weights, effects, strict=True)), dtype=np.float64
        )

    def input_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's feature columns of `frame` (the serving example)."""
        return frame[self.feature_names]


def _fit_arm(x: np.ndarray, y: np.ndarray, names: list[str], seed: int, regularised: bool, rounds: int):
    return _boost(x, y, names, learner_params(len(y), seed, regularised=regularised), rounds)


def _fit_effect(x: np.ndarray, target: np.ndarray, names: list[str], seed: int, rounds: int) -> lgb.Booster:
    return _boost(x, target, names, effect_params(len(target), seed), rounds)


def _boost(x: np.ndarray, target: np.ndarray, names: list[str], params: dict, rounds: int) -> lgb.Booster:
    return lgb.train(
        params, lgb.Dataset(x, target, feature_name=names, free_raw_data=True), num_boost_round=rounds
    )


def fit_uplift(
    frame: pd.DataFrame,
    feature_names: list[str],
    categorical_features: list[str],
    *,
    estimator: Estimator = CHOSEN_ESTIMATOR,
    rounds: int = 100,
    seed: int = 0,
) -> UpliftModel:
    """Fit an uplift estimator on `frame` (feature columns, `treated` 0/1, `label` 0/1 churned in the horizon).

    - "t": T-learner, uplift = control arm's P(churn) - treated arm's.
    - "t_regularised": the same with five times larger leaves, stronger L2 and half the rounds.
    - "x": X-learner (Kuenzel et al. 2019): each arm's observed outcome against the other arm's prediction is an
      imputed individual effect, regressed per arm; the two regressions are averaged with the propensity
      (the treated share: campaigns hold out a fixed share at random, so it is known) as the weight.
    - "dr": DR-learner (Kennedy 2023): doubly robust pseudo-outcomes from cross-fitted arm classifiers and the
      known propensity, regressed on the features.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown uplift estimator {estimator!r}: one of {', '.join(ESTIMATORS)}")
    categories = training_categories(frame, [c for c in categorical_features if c in feature_names])
    t = frame["treated"].to_numpy() == 1
    y = frame["label"].to_numpy().astype(np.float64)
    for arm, rows in ((0, ~t), (1, t)):
        if len(np.unique(y[rows])) < 2:
            raise ValueError(
                f"the {'treated' if arm else 'control'} customers of the campaigns have only one outcome "
                f"({int(rows.sum())} rows): an uplift model needs churners and stayers in both groups"
            )
    x = lightgbm_array(frame, feature_names, categories, dtype=np.float32)
    regularised = estimator == "t_regularised"
    arm_rounds = rounds // 2 if regularised else rounds
    control = _fit_arm(x[~t], y[~t], feature_names, seed, regularised, arm_rounds)
    treated = _fit_arm(x[t], y[t], feature_names, seed, regularised, arm_rounds)
    model = UpliftModel(control, treated, feature_names, categories, estimator=estimator)
    e = float(t.mean())  # P(contacted): the campaigns' fixed treated share
    if estimator == "x":
        # imputed effect (churn prevented): control churn predicted minus observed for the treated, observed
        # minus predicted-if-contacted for the held out; each arm's model is applied to the other arm only
        d_treated = control.predict(x[t]) - y[t]
        d_control = y[~t] - treated.predict(x[~t])
        model.effects = [
            _fit_effect(x[~t], d_control, feature_names, seed, rounds),
            _fit_effect(x[t], d_treated, feature_names, seed, rounds),
        ]
        model.effect_weights = [e, 1 - e]  # tau = g tau_control + (1 - g) tau_treated, g = e (Kuenzel eq. 9)
    elif estimator == "dr":
        mu0, mu1 = np.empty(len(y)), np.empty(len(y))
        fold = np.random.default_rng(seed).integers(0, CROSS_FIT_FOLDS, len(y))
        for k in range(CROSS_FIT_FOLDS):  # nuisance models predict only rows they did not learn from
            fit, out = fold != k, fold == k
            mu0[out] = _fit_arm(x[fit & ~t], y[fit & ~t], feature_names, seed, False, rounds).predict(x[out])
            mu1[out] = _fit_arm(x[fit & t], y[fit & t], feature_names, seed, False, rounds).predict(x[out])
        pseudo = mu0 - mu1 + np.where(t, -(y - mu1) / e, (y - mu0) / (1 - e))
        model.effects, model.effect_weights = [_fit_effect(x, pseudo, feature_names, seed, rounds)], [1.0]
    return model


@dataclass(frozen=True)
class QiniCurve:
    """Targeted share of customers (0..1) and the customers saved up to each cut, plus its summary."""

    share: np.ndarray
    saved: np.ndarray

    def coefficient(self) -> float:
        """Area between the curve and random targeting (the diagonal to the same end), per customer."""
        diagonal = self.share * self.saved[-1]
        return float(np.trapezoid(self.saved - diagonal, self.share))

    def saved_at(self, share: float) -> float:
        """Customers saved when the top `share` of customers are targeted (interpolated)."""
        return float(np.interp(share, self.share, self.saved))


def qini_curve(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> QiniCurve:
    """The Qini curve of ranking by `score` (highest first) on customers with a known group and outcome."""
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    t = np.asarray(treated, dtype=np.float64)[order]
    y = np.asarray(churned, dtype=np.float64)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(1 - t)
    churn_t, churn_c = np.cumsum(y * t), np.cumsum(y * (1 - t))
    with np.errstate(invalid="ignore", divide="ignore"):
        saved = np.where(n_c > 0, churn_c * n_t / n_c, 0.0) - churn_t
    share = np.arange(1, len(order) + 1) / max(len(order), 1)
    return QiniCurve(np.concatenate([[0.0], share]), np.concatenate([[0.0], saved]))
