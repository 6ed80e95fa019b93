"""Out-of-time train/validation/test split of a labelled snapshot frame.

The model is used on dates after everything it was trained on, so it is evaluated the same way: the latest
snapshots are the test set, the ones just before are validation (early stopping, calibration, tuning) and
only earlier snapshots are trained on. A frame with a single snapshot cannot be split in time; it falls back
to a deterministic split by a hash of `customer_id` and says so in `Split.strategy`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import ModelConfig
from pipeline.errors import ConfigError, DataValidationError

# Customer-hash fallback: buckets 0-99; the first 20 are test, the next 20 validation, the rest training.
_HASH_TEST_PCT = 20
_HASH_VALID_PCT = 20


@dataclass(frozen=True)
class Split:
    """Row subsets of one training frame (original index kept) and how they were made."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    strategy: str
    kind: str  # "out_of_time" | "customer_hash"
    train_snapshots: list[dt.date]
    valid_snapshots: list[dt.date]
    test_snapshots: list[dt.date]

    def sizes(self) -> dict[str, int]:
        """Rows per part."""
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


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
    then `gap_snapshots` dropped, earlier -> train. A single snapshot falls back to a customer-hash split."""
    dates = snapshot_dates(frame)
    if not dates:
        raise DataValidationError(
            ["training frame is empty: no snapshots to split (build the training set first)"]
        )
    snap = pd.to_datetime(frame["snapshot_date"]).dt.date

    if len(dates) == 1:
        bucket = customer_hash_bucket(frame["customer_id"])
        test_mask = bucket < _HASH_TEST_PCT
        valid_mask = (bucket >= _HASH_TEST_PCT) & (bucket < _HASH_TEST_PCT + _HASH_VALID_PCT)
        train_mask = ~(test_mask | valid_mask)
        strategy = (
            f"customer-hash split: the training set has a single snapshot ({dates[0]}), so it cannot be split "
            f"in time; customers are split by a hash of customer_id into "
            f"{100 - _HASH_TEST_PCT - _HASH_VALID_PCT}% train / {_HASH_VALID_PCT}% validation / "
            f"{_HASH_TEST_PCT}% test. Test metrics do not measure performance on later dates; "
            f"add snapshots (snapshots.count) for an out-of-time evaluation."
        )
        return Split(
            train=frame.loc[train_mask],
            valid=frame.loc[valid_mask],
            test=frame.loc[test_mask],
            strategy=strategy,
            kind="customer_hash",
            train_snapshots=list(dates),
            valid_snapshots=list(dates),
            test_snapshots=list(dates),
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
    return Split(
        train=frame.loc[snap.isin(set(train_dates)).to_numpy()],
        valid=frame.loc[snap.isin(set(valid_dates)).to_numpy()],
        test=frame.loc[snap.isin(set(test_dates)).to_numpy()],
        strategy=strategy,
        kind="out_of_time",
        train_snapshots=list(train_dates),
        valid_snapshots=list(valid_dates),
        test_snapshots=list(test_dates),
    )


def held_out_test(frame: pd.DataFrame, cfg: ModelConfig) -> tuple[pd.DataFrame, list[dt.date]]:
    """Only the test rows of the split (what a registered model is evaluated on)."""
    split = out_of_time_split(frame, cfg)
    return split.test, split.test_snapshots


def _span(dates: list[dt.date]) -> str:
    return str(dates[0]) if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
