"""Train/validation/test split of a labelled snapshot frame, and the folds model selection runs on.

The model is used on dates after everything it was trained on, so it is evaluated the same way: the latest
snapshots are the test set, the ones just before are validation (selection, early stopping, calibration,
tuning) and only earlier snapshots are trained on; the chosen model is then refitted on train + validation.
A frame with a single snapshot cannot be split in time: a hash of `customer_id` holds out the test customers,
and the other customers go through cross-validation grouped by customer (no customer in two folds) before the
refit on all of them; `Split.strategy` says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from pipeline.config import ModelConfig
from pipeline.errors import ConfigError, DataValidationError

# Customer-hash fallback: buckets 0-99; the first 20 are test, the rest go through cross-validation.
_HASH_TEST_PCT = 20

Fold = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Split:
    """Row subsets of one training frame (original index kept) and how they were made.

    `development` is every non-test row the final model is refitted on; `folds` are (training, validation)
    positions into it: one fold (train -> validation snapshots) out of time, `cv_folds` customer-grouped
    folds otherwise. `train` / `valid` are the rows of the first fold."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    strategy: str
    kind: str  # "out_of_time" | "customer_hash"
    train_snapshots: list[dt.date]
    valid_snapshots: list[dt.date]
    test_snapshots: list[dt.date]
    development: pd.DataFrame | None = None
    folds: list[Fold] | None = None

    def sizes(self) -> dict[str, int]:
        """Rows per part."""
        out = {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}
        if self.development is not None:
            out["development"] = len(self.development)
            out["folds"] = len(self.folds or [])
        return out


def snapshot_dates(frame: pd.DataFrame) -> list[dt.date]:
    """Distinct snapshot dates of a training frame, ascending."""
    if "snapshot_date" not in frame.columns:
        raise DataValidationError(
            ["training frame: column 'snapshot_date' is missing (expected the as-of date of each row)"]
        )
    dates = pd.to_datetime(frame["snapshot_date"]).dt.date.unique()
    return sorted(dates)


def customer_hash_bucket(customer_ids: pd.Series) -> np.ndarray:
    """A stable bucket 0..99 per customer id (same id -> same bucket on every run and machine)."""
    hashed = pd.util.hash_pandas_object(customer_ids.astype(str), index=False).to_numpy()
    return (hashed % 100).astype(np.int64)


def out_of_time_split(frame: pd.DataFrame, cfg: ModelConfig) -> Split:
    """Split by snapshot date: latest `test_snapshots` -> test, the `valid_snapshots` before -> validation,
    then `gap_snapshots` dropped, earlier -> train. A single snapshot falls back to a customer-hash test set
    and customer-grouped cross-validation on the rest."""
    dates = snapshot_dates(frame)
    if not dates:
        raise DataValidationError(
            ["training frame is empty: no snapshots to split (build the training set first)"]
        )
    snap = pd.to_datetime(frame["snapshot_date"]).dt.date

    if len(dates) == 1:
        bucket = customer_hash_bucket(frame["customer_id"])
        test_mask = bucket < _HASH_TEST_PCT
        dev = frame.loc[~test_mask]
        folds = customer_folds(dev, cfg.cv_folds, cfg.seed)
        strategy = (
            f"customer-hash split: the training set has a single snapshot ({dates[0]}), so it cannot be split "
            f"in time; {_HASH_TEST_PCT}% of customers (by a hash of customer_id) are the test set, the other "
            f"{100 - _HASH_TEST_PCT}% go through {len(folds)}-fold cross-validation grouped by customer "
            f"(selection, early stopping, out-of-fold calibration) and the chosen model is refitted on all of "
            f"them. Test metrics do not measure performance on later dates; add snapshots (snapshots.count) "
            f"for an out-of-time evaluation."
        )
        tr, va = folds[0]
        return Split(
            train=dev.iloc[tr],
            valid=dev.iloc[va],
            test=frame.loc[test_mask],
            strategy=strategy,
            kind="customer_hash",
            train_snapshots=list(dates),
            valid_snapshots=list(dates),
            test_snapshots=list(dates),
            development=dev,
            folds=folds,
        )

    needed = cfg.test_snapshots + cfg.valid_snapshots + cfg.gap_snapshots + 1
    if len(dates) < needed:
        raise ConfigError(
            f"the training set has {len(dates)} snapshots ({', '.join(map(str, dates))}) but the split needs "
            f"{needed}: model.test_snapshots={cfg.test_snapshots} + model.valid_snapshots={cfg.valid_snapshots} "
            f"+ model.gap_snapshots={cfg.gap_snapshots} + at least 1 for training. Lower those settings or "
            f"raise snapshots.count (the data must span enough dates for it)."
        )
    test_dates = dates[-cfg.test_snapshots :]
    valid_dates = dates[-(cfg.test_snapshots + cfg.valid_snapshots) : -cfg.test_snapshots]
    n_train = len(dates) - cfg.test_snapshots - cfg.valid_snapshots - cfg.gap_snapshots
    train_dates = dates[:n_train]
    gap_dates = dates[n_train : n_train + cfg.gap_snapshots]

    strategy = (
        f"out-of-time split: train {len(train_dates)} snapshot(s) {train_dates[0]}..{train_dates[-1]}, "
        f"validation {_span(valid_dates)}, test {_span(test_dates)}"
    )
    if gap_dates:
        strategy += (
            f"; {len(gap_dates)} snapshot(s) left out between train and validation ({_span(gap_dates)})"
        )
    train = frame.loc[snap.isin(set(train_dates)).to_numpy()]
    valid = frame.loc[snap.isin(set(valid_dates)).to_numpy()]
    strategy += "; the chosen model is refitted on train + validation"
    return Split(
        train=train,
        valid=valid,
        test=frame.loc[snap.isin(set(test_dates)).to_numpy()],
        strategy=strategy,
        kind="out_of_time",
        train_snapshots=list(train_dates),
        valid_snapshots=list(valid_dates),
        test_snapshots=list(test_dates),
        development=pd.concat([train, valid]),
        folds=[(np.arange(len(train)), np.arange(len(train), len(train) + len(valid)))],
    )


def customer_folds(frame: pd.DataFrame, n_folds: int, seed: int) -> list[Fold]:
    """Positions of `n_folds` (training, validation) folds of `frame`: stratified by label, grouped by
    customer_id (a customer's rows are all in one validation fold), shuffled with `seed`."""
    y = frame["label"].to_numpy()
    groups = pd.factorize(frame["customer_id"])[0]
    positives = int(y.sum())
    k = min(n_folds, positives, len(y) - positives, len(np.unique(groups)))
    if k < 2:
        raise DataValidationError(
            [
                f"training frame: {positives} churners among {len(y)} non-test rows; cross-validation needs at "
                f"least 2 of each class: use more data or a longer label horizon (label.horizon_days)"
            ]
        )
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in cv.split(np.zeros(len(y)), y, groups)]


def held_out_test(frame: pd.DataFrame, cfg: ModelConfig) -> tuple[pd.DataFrame, list[dt.date]]:
    """Only the test rows of the split (what a registered model is evaluated on)."""
    split = out_of_time_split(frame, cfg)
    return split.test, split.test_snapshots


def _span(dates: list[dt.date]) -> str:
    return str(dates[0]) if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
