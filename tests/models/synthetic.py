"""Synthetic training frames with the exact schema of `churn_pipeline.stages.training_set.TrainingSet`.

Labels are drawn from a known logistic model of the features, so tests can compare predictions with the true
churn probability (`SyntheticSet.true_probability`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churn_pipeline.stages.training_set import LabelDefinition, SnapshotSummary, TrainingSetManifest

FEATURES = [
    "tenure_days",
    "logins_30d",
    "days_since_last_login",
    "complaints_30d",
    "monthly_fee",
    "plan",
    "region",
]
CATEGORICAL = ["plan", "region"]
PLANS = ["basic", "pro", "premium"]
REGIONS = ["north", "south", "east", "west"]


@dataclass
class SyntheticSet:
    """Stands in for `TrainingSet` (.frame, .manifest, .path) plus the true churn probability of each row."""

    frame: pd.DataFrame
    manifest: TrainingSetManifest
    true_probability: np.ndarray
    path: Path | None = None
    extra: dict = field(default_factory=dict)


def true_logit(frame: pd.DataFrame, shift: float = 0.0) -> np.ndarray:
    """The generating model's log-odds of churn for rows of a synthetic frame."""
    plan_effect = frame["plan"].map({"basic": 0.6, "pro": 0.0, "premium": -0.6}).astype(float).to_numpy()
    dsl = frame["days_since_last_login"].fillna(60.0).to_numpy()
    return (
        -2.2
        + shift
        + 0.8 * frame["complaints_30d"].to_numpy()
        - 0.06 * frame["logins_30d"].to_numpy()
        + 0.035 * dsl
        - 0.0015 * frame["tenure_days"].to_numpy()
        + 0.01 * (frame["monthly_fee"].to_numpy() - 40)
        + plan_effect
    )


def make_training_set(
    n_customers: int = 600,
    snapshots: int = 5,
    spacing_days: int = 14,
    seed: int = 0,
    last_snapshot: dt.date = dt.date(2024, 9, 1),
    shift: float = 0.0,
) -> SyntheticSet:
    """`snapshots` rolling snapshots of `n_customers` customers each, with features, labels and manifest."""
    rng = np.random.default_rng(seed)
    dates = [last_snapshot - dt.timedelta(days=spacing_days * i) for i in range(snapshots)][::-1]
    n = n_customers * snapshots
    ids = np.tile(np.array([f"C{i:05d}" for i in range(n_customers)], dtype=object), snapshots)
    snap = np.repeat(np.array(dates, dtype="datetime64[ns]"), n_customers)
    base_tenure = rng.integers(10, 900, n_customers)
    tenure = np.tile(base_tenure, snapshots) + np.repeat(np.arange(snapshots) * spacing_days, n_customers)
    logins = rng.poisson(12, n).astype(np.int64)
    dsl = rng.exponential(8, n).round()
    dsl[rng.random(n) < 0.08] = np.nan  # never logged in
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "snapshot_date": pd.to_datetime(snap),
            "tenure_days": tenure.astype(np.int64),
            "logins_30d": logins,
            "days_since_last_login": dsl,
            "complaints_30d": rng.poisson(0.4, n).astype(np.int64),
            "monthly_fee": np.tile(rng.choice([19.0, 39.0, 79.0], n_customers), snapshots),
            "plan": pd.Categorical(np.tile(rng.choice(PLANS, n_customers), snapshots), categories=PLANS),
            "region": pd.Categorical(
                np.where(rng.random(n) < 0.05, None, rng.choice(REGIONS, n)), categories=REGIONS
            ),
        }
    )
    p = 1.0 / (1.0 + np.exp(-true_logit(frame, shift)))
    frame["label"] = (rng.random(n) < p).astype(np.int8)
    snaps = tuple(
        SnapshotSummary(
            d, int(n_customers), float(frame.loc[frame.snapshot_date == pd.Timestamp(d), "label"].mean())
        )
        for d in dates
    )
    manifest = TrainingSetManifest(
        fingerprint=f"synthetic-{seed}-{n_customers}-{snapshots}",
        data_fingerprint=f"data-{seed}",
        data_source=None,
        data_end_date=last_snapshot + dt.timedelta(days=30),
        feature_set_version="synthetic",
        snapshots=snaps,
        rows=len(frame),
        churn_rate=float(frame["label"].mean()),
        features=tuple(FEATURES),
        categorical_features=tuple(CATEGORICAL),
        label=LabelDefinition("cancellation", 30),
        feature_config={},
        snapshot_config={},
    )
    return SyntheticSet(frame=frame, manifest=manifest, true_probability=p)


def fit_churn_model(
    ts: SyntheticSet,
    *,
    shuffle_labels: bool = False,
    seed: int = 0,
    calibration: str = "isotonic",
    candidates: tuple[str, ...] = ("lightgbm",),
):
    """A ChurnModel trained on the out-of-time split of `ts` (labels of the training rows shuffled when asked,
    which gives a genuinely worse model), from the given candidates (default LightGBM alone, no tuning);
    returns (model, split)."""
    from churn_pipeline.core.config import LightGBMConfig, ModelConfig, TuningConfig
    from churn_pipeline.models.churn_model import ChurnModel, mlflow_column_type
    from churn_pipeline.models.drift import reference_profile
    from churn_pipeline.models.split import out_of_time_split
    from churn_pipeline.models.training import train_candidates

    cfg = ModelConfig(
        candidates=candidates,
        calibration=calibration,
        seed=seed,
        lightgbm=LightGBMConfig(n_estimators=200),
        tuning=TuningConfig(trials=0),
    )
    split = out_of_time_split(ts.frame, cfg)
    if shuffle_labels:
        rng = np.random.default_rng(seed)
        frame = ts.frame.copy()
        rows = frame.index.isin(split.train.index)
        frame.loc[rows, "label"] = rng.permutation(frame.loc[rows, "label"].to_numpy())
        split = out_of_time_split(frame, cfg)
    features, cats = list(ts.manifest.features), list(ts.manifest.categorical_features)
    trained = train_candidates(split, features, cats, cfg)
    model = ChurnModel(
        estimator=trained.fitted(),
        calibrator=trained.calibrators[trained.chosen],
        feature_names=features,
        categorical_features=cats,
        categories=trained.categories,
        reference=reference_profile(split.development, features, cats),
        metadata={"label": ts.manifest.label.to_json(), "optimal_list_pct": 10},
        column_types={f: mlflow_column_type(split.development[f].dtype) for f in features if f not in cats},
    )
    return model, split
