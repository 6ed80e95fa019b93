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

from churn_pipeline.core.config import ModelConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError

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
    # majority-class sampling (`sampling_rate`): the rate non-churners of train and validation are fitted at
    # (1 = all), and the positions in `development` of the rows the final model is refitted on (None = all)
    sampling_rate: float = 1.0
    refit_rows: np.ndarray | None = None
    # positions in `development` of every validation-snapshot row, when the fold validates on only some of
    # its customers: calibration and the list size use them all (None: the fold's validation rows)
    calibration_rows: np.ndarray | None = None

    def sizes(self) -> dict[str, int]:
        """Rows per part."""
        out = {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}
        if self.development is not None:
            # the rows the final model is refitted on
            out["development"] = len(self.development if self.refit_rows is None else self.refit_rows)
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


def out_of_time_split(frame: pd.DataFrame, cfg: ModelConfig, rate: float | None = None) -> Split:
    """Split by snapshot date: latest `test_snapshots` -> test, the `valid_snapshots` before -> validation,
    then `gap_snapshots` dropped, earlier -> train. A single snapshot falls back to a customer-hash test set
    and customer-grouped cross-validation on the rest.

    When train + validation exceed `cfg.max_training_rows`, non-churners are fitted at `sampling_rate` by
    `sample_mask` (`rate` overrides the rate computed from `frame`: a caller that read train rows already
    sampled passes the rate of the whole set; sampling a sample at its rate keeps it whole)."""
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

    train_dates, valid_dates, test_dates, gap_dates = split_dates(dates, cfg)
    strategy = (
        f"out-of-time split: train {len(train_dates)} snapshot(s) {train_dates[0]}..{train_dates[-1]}, "
        f"validation {_span(valid_dates)}, test {_span(test_dates)}"
    )
    if gap_dates:
        strategy += (
            f"; {len(gap_dates)} snapshot(s) left out between train and validation ({_span(gap_dates)})"
        )
    train_pos = np.flatnonzero(snap.isin(set(train_dates)).to_numpy())
    valid_pos = np.flatnonzero(snap.isin(set(valid_dates)).to_numpy())
    test_pos = np.flatnonzero(snap.isin(set(test_dates)).to_numpy())
    labels = frame["label"].to_numpy()
    keys = frame[["customer_id", "snapshot_date", "label"]]  # what sampling reads: no copy of the features
    if rate is None:
        dev_labels = labels[np.concatenate([train_pos, valid_pos])]
        rate = sampling_rate(len(dev_labels), int((dev_labels == 1).sum()), cfg.max_training_rows)
    refit_rows = None
    if rate < 1.0:
        # train is fitted on its sample; validation is scored whole (selection, early stopping, calibration:
        # the calibrator maps the sampled fits' scores to unsampled churn rates) and sampled for the refit
        train_pos = train_pos[sample_mask(keys.iloc[train_pos], rate, cfg.seed)]
        keep_valid = sample_mask(keys.iloc[valid_pos], rate, cfg.seed)
        refit_rows = np.concatenate([np.arange(len(train_pos)), len(train_pos) + np.flatnonzero(keep_valid)])
        strategy += (
            f"; non-churners of train and validation fitted at rate {rate:.4f} (all churners kept; "
            f"model.max_training_rows {cfg.max_training_rows:,}), validation scored whole"
        )
    # one copy: development = train then validation rows; the fold's train and valid rows index into it
    development = frame.take(np.concatenate([train_pos, valid_pos]))
    n_train = len(train_pos)
    all_train, all_valid = np.arange(n_train), np.arange(n_train, len(development))
    folds = [(all_train, all_valid)]
    calibration_rows = None
    if cfg.valid_customers_pct > 0:
        calibration_rows = all_valid
        # Validation customers are kept out of the training snapshots: the same customers seen at earlier
        # dates let early stopping reward memorising them (their static attributes act as an identity), which
        # chose 226-366 trees where 25-37 generalised better, to new customers and known ones alike (simulated
        # companies, held-out customers scored a month later: ROC-AUC 0.782 -> 0.807, noisy 0.714 -> 0.753).
        bucket = customer_hash_bucket(development["customer_id"])
        pct = cfg.valid_customers_pct
        rotate = 0 < len(development) <= cfg.valid_rotation_max_rows
        # On small sets every customer group validates in turn: a quarter of one snapshot is a few hundred
        # rows (543 on a 20k-customer purchase log), too few to choose a model, stop early or tune on.
        groups = int(np.ceil(100 / pct)) if rotate else 1
        folds = []
        for g in range(groups):
            held_out = (bucket >= g * pct) & (bucket < (g + 1) * pct)
            folds.append((all_train[~held_out[:n_train]], all_valid[held_out[n_train:]]))
        if rotate:
            calibration_rows = None  # the folds' validation rows are every validation row: out-of-fold
            strategy += (
                f"; validation in {groups} folds: each holds out {pct:g}% of customers (by a hash of "
                f"customer_id) from the training snapshots and validates on their validation snapshot rows "
                f"(train + validation {len(development):,} rows <= model.valid_rotation_max_rows "
                f"{cfg.valid_rotation_max_rows:,})"
            )
        else:
            strategy += (
                f"; validation on the {pct:g}% of customers (by a hash of customer_id) whose training snapshots "
                f"are left out of the fit it validates"
            )
    strategy += "; the chosen model is refitted on train + validation"
    fold_train, fold_valid = folds[0]
    return Split(
        train=development.iloc[fold_train],
        valid=development.iloc[fold_valid],
        test=frame.take(test_pos),
        strategy=strategy,
        kind="out_of_time",
        train_snapshots=list(train_dates),
        valid_snapshots=list(valid_dates),
        test_snapshots=list(test_dates),
        development=development,
        folds=folds,
        sampling_rate=float(rate),
        refit_rows=refit_rows,
        calibration_rows=calibration_rows,
    )


def split_dates(
    dates: list[dt.date], cfg: ModelConfig
) -> tuple[list[dt.date], list[dt.date], list[dt.date], list[dt.date]]:
    """(train, validation, test, gap) snapshot dates of an out-of-time split of the ascending `dates`."""
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
    return dates[:n_train], valid_dates, test_dates, dates[n_train : n_train + cfg.gap_snapshots]


# Non-churners are never sampled below this rate: a budget smaller than the churners is not honoured.
MIN_SAMPLING_RATE = 0.01


def sampling_rate(rows: int, churners: int, budget: int) -> float:
    """The rate non-churners are kept at so that `rows` (with `churners`) fit `budget`: 1 when they fit (or
    `budget` is 0), else (budget - churners) / non-churners, at least `MIN_SAMPLING_RATE`."""
    non_churners = rows - churners
    if budget <= 0 or rows <= budget or non_churners <= 0:
        return 1.0
    return float(np.clip((budget - churners) / non_churners, MIN_SAMPLING_RATE, 1.0))


def sample_mask(frame: pd.DataFrame, rate: float, seed: int) -> np.ndarray:
    """Rows kept by the majority-class sampling rule: every churner (label 1), and a non-churner when a hash of
    (customer_id, snapshot_date, seed), uniform in [0, 1), is below `rate`. Deterministic, independent of
    row order and of the other rows, so a sample of a sample at the same rate is itself."""
    keep = frame["label"].to_numpy() == 1
    if rate >= 1.0:
        return np.ones(len(frame), dtype=bool)
    keys = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "snapshot_day": pd.to_datetime(frame["snapshot_date"])
            .to_numpy()
            .astype("datetime64[D]")
            .astype(np.int64),
        }
    )
    hashed = pd.util.hash_pandas_object(keys, index=False, hash_key=f"{seed % 10**16:016d}").to_numpy()
    uniform = (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)
    return keep | (uniform < rate)


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
