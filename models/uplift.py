"""Uplift: how much a retention contact lowers a customer's churn probability, learnt from past campaigns
with control groups, and the Qini curve that judges a ranking by it.

The estimator is a T-learner (Kuenzel et al. 2019): one LightGBM churn classifier fitted on the held-out
(control) customers, one on the contacted (treated) ones, each on the features as of the campaign's list date;
a customer's uplift is P(churn | not contacted) - P(churn | contacted), the churn a contact prevents. Why not
a library: scikit-uplift's last release is 0.5.1 (2022), and causalml (0.18, maintained) brings a compiled
build and a large dependency tree for this same estimator; a T-learner is two fits of the classifier the
pipeline already uses, with its categorical handling. Its known weakness (two separate fits can disagree by
noise where the effect is small) is why the ranking is judged out of time on the Qini curve below, against
ranking by risk, before anyone uses it.

Qini curve (Radcliffe 2007), for an outcome we want to prevent: customers sorted by the score, descending; at
each cut the customers saved among the treated so far, control churners scaled to the treated count minus
treated churners. Its area above the random-targeting diagonal, per customer, is the Qini coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from churn_pipeline.models.encoding import coerce_features
from churn_pipeline.models.training import compute_threads, lightgbm_array, training_categories


def learner_params(rows: int, seed: int) -> dict:
    """LightGBM settings for each arm: small trees and a floor on leaf size that grows with the data, since
    an arm sees only its half of a few thousand campaign targets and noise in either arm becomes uplift."""
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 7,
        "min_data_in_leaf": max(40, rows // 100),
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
    """Churn prevented by a contact, per row of a feature frame (a T-learner of two LightGBM boosters)."""

    def __init__(
        self,
        control: lgb.Booster,
        treated: lgb.Booster,
        feature_names: list[str],
        categories: dict[str, list[str]],
        metadata: dict | None = None,
    ):
        self.control = control
        self.treated = treated
        self.feature_names = list(feature_names)
        self.categories = {k: list(v) for k, v in categories.items()}
        self.column_types: dict[str, str] = {}  # read by the registry's serving signature
        self.metadata = dict(metadata or {})

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The features as the boosters read them (training categories, NaN for missing or unseen)."""
        frame = coerce_features(frame, self.feature_names, self.categories)
        return lightgbm_array(frame, self.feature_names, self.categories)

    def churn_probabilities(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """P(churn) if not contacted and if contacted, per row."""
        x = self.matrix(frame)
        return self.control.predict(x), self.treated.predict(x)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        """Uplift per row: P(churn | not contacted) - P(churn | contacted)."""
        p_not, p_yes = self.churn_probabilities(model_input)
        return np.asarray(p_not - p_yes, dtype=np.float64)

    def input_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's feature columns of `frame` (the serving example)."""
        return frame[self.feature_names]


def fit_uplift(
    frame: pd.DataFrame,
    feature_names: list[str],
    categorical_features: list[str],
    *,
    rounds: int = 100,
    seed: int = 0,
) -> UpliftModel:
    """Fit the two arms on `frame` (feature columns, `treated` 0/1, `label` 0/1 churned in the horizon)."""
    categories = training_categories(frame, [c for c in categorical_features if c in feature_names])
    boosters = {}
    for arm in (0, 1):
        rows = frame[frame["treated"] == arm]
        if rows["label"].nunique() < 2:
            raise ValueError(
                f"the {'treated' if arm else 'control'} customers of the campaigns have only one outcome "
                f"({len(rows)} rows): an uplift model needs churners and stayers in both groups"
            )
        x = lightgbm_array(rows, feature_names, categories, dtype=np.float32)
        data = lgb.Dataset(x, rows["label"].to_numpy(), feature_name=feature_names, free_raw_data=True)
        boosters[arm] = lgb.train(learner_params(len(rows), seed), data, num_boost_round=rounds)
    return UpliftModel(boosters[0], boosters[1], feature_names, categories)


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
