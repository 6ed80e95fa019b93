"""Splits: out of time (never training on a later snapshot), customer-grouped CV for one snapshot, sampling."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.core.config import ModelConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.models.split import (
    MIN_SAMPLING_RATE,
    customer_hash_bucket,
    held_out_test,
    out_of_time_split,
    sample_mask,
    sampling_rate,
    snapshot_dates,
)
from tests.models.synthetic import make_training_set


def _dates(frame: pd.DataFrame) -> set[dt.date]:
    return set(pd.to_datetime(frame["snapshot_date"]).dt.date)


@pytest.mark.parametrize(("test_n", "valid_n", "gap_n"), [(1, 1, 0), (2, 2, 0), (1, 2, 1), (1, 1, 3)])
def test_out_of_time_split_never_trains_on_a_later_snapshot(test_n, valid_n, gap_n):
    ts = make_training_set(n_customers=50, snapshots=7, seed=3)
    # shuffled rows: the split must rely on dates, not on row order
    frame = ts.frame.sample(frac=1.0, random_state=1)
    split = out_of_time_split(
        frame,
        ModelConfig(
            test_snapshots=test_n, valid_snapshots=valid_n, gap_snapshots=gap_n, valid_customers_pct=0
        ),
    )

    all_dates = snapshot_dates(frame)
    train, valid, test = _dates(split.train), _dates(split.valid), _dates(split.test)
    assert max(train) < min(valid) <= max(valid) < min(test)
    assert sorted(test) == all_dates[-test_n:]
    assert sorted(valid) == all_dates[-(test_n + valid_n) : -test_n]
    assert len(train) == len(all_dates) - test_n - valid_n - gap_n
    # every row of a kept snapshot is in exactly one part; rows of the gap snapshots in none
    parts = [split.train.index, split.valid.index, split.test.index]
    assert sum(len(p) for p in parts) == len(frame) - 50 * gap_n
    assert len(set().union(*map(set, parts))) == sum(len(p) for p in parts)
    assert split.kind == "out_of_time"
    assert split.train_snapshots == sorted(train) and split.test_snapshots == sorted(test)


def test_single_snapshot_holds_out_test_customers_and_cross_validates_the_rest_and_says_so():
    ts = make_training_set(n_customers=2000, snapshots=1, seed=4)
    split = out_of_time_split(ts.frame, ModelConfig(cv_folds=4))
    again = out_of_time_split(ts.frame.sample(frac=1.0, random_state=2), ModelConfig(cv_folds=4))

    assert split.kind == "customer_hash"
    assert "single snapshot" in split.strategy and "cross-validation grouped by customer" in split.strategy
    dev_ids, test_ids = set(split.development["customer_id"]), set(split.test["customer_id"])
    assert not dev_ids & test_ids and len(dev_ids) + len(test_ids) == 2000
    # same customers held out whatever the row order
    assert set(again.test["customer_id"]) == test_ids
    assert 0.12 < len(split.test) / 2000 < 0.28
    # the folds cover every development row once, no customer on both sides of a fold
    assert len(split.folds) == 4
    validated = np.sort(np.concatenate([va for _, va in split.folds]))
    assert np.array_equal(validated, np.arange(len(split.development)))
    ids = split.development["customer_id"].to_numpy()
    for tr, va in split.folds:
        assert not set(ids[tr]) & set(ids[va])
        assert len(tr) + len(va) == len(split.development)


def test_out_of_time_development_is_train_then_validation_with_one_fold():
    ts = make_training_set(n_customers=40, snapshots=5, seed=2)
    split = out_of_time_split(ts.frame, ModelConfig(valid_snapshots=2, valid_customers_pct=0))
    assert len(split.development) == len(split.train) + len(split.valid)
    ((tr, va),) = split.folds
    assert split.development.iloc[tr].index.equals(split.train.index)
    assert split.development.iloc[va].index.equals(split.valid.index)
    assert "refitted on train + validation" in split.strategy


def test_out_of_time_validation_customers_are_left_out_of_the_fit_they_validate():
    ts = make_training_set(n_customers=400, snapshots=5, seed=2)
    cfg = ModelConfig(valid_snapshots=1, valid_customers_pct=25, valid_rotation_max_rows=0)
    split = out_of_time_split(ts.frame, cfg)
    everyone = out_of_time_split(ts.frame, cfg.model_copy(update={"valid_customers_pct": 0}))
    # the refit still learns every train and validation row
    pd.testing.assert_frame_equal(split.development, everyone.development)
    ((tr, va),) = split.folds
    fit_ids = set(split.development["customer_id"].iloc[tr])
    valid_ids = set(split.development["customer_id"].iloc[va])
    assert not fit_ids & valid_ids  # no validation customer was fitted at an earlier date
    assert _dates(split.development.iloc[va]) == _dates(everyone.valid)  # still out of time
    assert 0.15 < len(valid_ids) / 400 < 0.35 and len(fit_ids) > 0.6 * 400
    # the same customers whatever the row order, named in the strategy
    again = out_of_time_split(ts.frame.sample(frac=1.0, random_state=5), cfg)
    assert set(again.valid["customer_id"]) == valid_ids
    assert "25% of customers" in split.strategy


def test_small_out_of_time_sets_validate_every_customer_group_in_turn():
    ts = make_training_set(n_customers=400, snapshots=5, seed=2)
    cfg = ModelConfig(valid_snapshots=1, valid_customers_pct=25)
    split = out_of_time_split(ts.frame, cfg)
    one = out_of_time_split(ts.frame, cfg.model_copy(update={"valid_rotation_max_rows": 0}))
    assert len(split.folds) == 4 and len(one.folds) == 1
    pd.testing.assert_frame_equal(split.development, one.development)
    ids = split.development["customer_id"].to_numpy()
    validated = np.concatenate([va for _, va in split.folds])
    valid_dates = pd.to_datetime(split.development["snapshot_date"]).dt.date.isin(_dates(one.valid))
    # every validation-snapshot row validates exactly once, and never in a fold that fitted its customer
    assert len(validated) == len(np.unique(validated)) == int(valid_dates.sum()) > 0
    for tr, va in split.folds:
        assert not set(ids[tr]) & set(ids[va])
        assert _dates(split.development.iloc[va]) == _dates(one.valid)  # out of time
        assert _dates(split.development.iloc[tr]).isdisjoint(_dates(one.valid))
    assert split.calibration_rows is None  # calibration reads the out-of-fold predictions
    assert one.calibration_rows is not None
    assert "validation in 4 folds" in split.strategy and "25%" in split.strategy
    # the first fold is the single-group split's; above the row limit there is one group
    assert split.valid.index.equals(one.valid.index) and split.train.index.equals(one.train.index)
    big = out_of_time_split(
        ts.frame, cfg.model_copy(update={"valid_rotation_max_rows": len(split.development) - 1})
    )
    assert len(big.folds) == 1


def test_customer_hash_bucket_is_stable_for_the_same_id():
    a = customer_hash_bucket(pd.Series(["C1", "C2", "C3"]))
    b = customer_hash_bucket(pd.Series(["C3", "C1"]))
    assert a[0] == b[1] and a[2] == b[0]
    assert ((a >= 0) & (a < 100)).all()
    # integer ids hash like their text
    assert np.array_equal(
        customer_hash_bucket(pd.Series([17, 42])), customer_hash_bucket(pd.Series(["17", "42"]))
    )


def test_too_few_snapshots_is_a_clear_config_error():
    ts = make_training_set(n_customers=20, snapshots=3)
    with pytest.raises(ConfigError) as e:
        out_of_time_split(ts.frame, ModelConfig(test_snapshots=1, valid_snapshots=2))
    msg = str(e.value)
    assert "3 snapshots" in msg and "needs 4" in msg and "model.valid_snapshots=2" in msg


def test_held_out_test_is_the_latest_snapshots():
    ts = make_training_set(n_customers=30, snapshots=5)
    test, dates = held_out_test(ts.frame, ModelConfig(test_snapshots=2))
    assert dates == snapshot_dates(ts.frame)[-2:]
    assert _dates(test) == set(dates) and len(test) == 60


# ------------------------------------------------------------------------------- majority-class sampling
def _keys(n: int, churn: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n) % (n // 4),
            "snapshot_date": pd.to_datetime("2024-01-01")
            + pd.to_timedelta((np.arange(n) // (n // 4)) * 14, "D"),
            "label": (rng.random(n) < churn).astype(np.int8),
        }
    )


def test_sampling_rate_fits_the_budget_and_is_one_within_it():
    assert sampling_rate(1000, 50, 0) == 1.0  # no limit
    assert sampling_rate(1000, 50, 1000) == 1.0
    assert sampling_rate(1000, 50, 500) == pytest.approx(450 / 950)
    assert sampling_rate(1000, 900, 500) == MIN_SAMPLING_RATE  # more churners than the budget


def test_sampling_keeps_every_churner_samples_non_churners_at_the_rate_and_is_deterministic():
    keys = _keys(400_000, churn=0.05)
    keep = sample_mask(keys, 0.3, seed=42)
    y = keys["label"].to_numpy()
    assert keep[y == 1].all()
    assert keep[y == 0].mean() == pytest.approx(0.3, abs=0.005)
    # deterministic, a function of the row alone (not its position), and a sample of a sample is itself
    assert np.array_equal(keep, sample_mask(keys, 0.3, seed=42))
    order = np.random.default_rng(1).permutation(len(keys))
    assert np.array_equal(sample_mask(keys.iloc[order], 0.3, seed=42), keep[order])
    assert sample_mask(keys[keep], 0.3, seed=42).all()
    # nested: a lower rate keeps a subset; another seed another sample
    assert not (sample_mask(keys, 0.1, seed=42) & ~keep).any()
    other = sample_mask(keys, 0.3, seed=7)
    assert (other != keep).mean() > 0.3
    assert sample_mask(keys, 1.0, seed=42).all()


def test_out_of_time_split_samples_training_non_churners_and_keeps_validation_and_test_whole():
    ts = make_training_set(n_customers=2000, snapshots=5, seed=3)
    frame = ts.frame
    full = out_of_time_split(frame, ModelConfig(valid_customers_pct=0))
    budget = 4000
    cfg = ModelConfig(max_training_rows=budget, valid_customers_pct=0)
    split = out_of_time_split(frame, cfg)
    dev = pd.concat([full.train, full.valid])
    expected_rate = sampling_rate(len(dev), int(dev["label"].sum()), budget)
    assert split.sampling_rate == pytest.approx(expected_rate) and expected_rate < 1
    # train: every churner, non-churners at the rate; validation and test untouched
    assert split.train["label"].sum() == full.train["label"].sum()
    assert len(split.train) < 0.6 * len(full.train)
    pd.testing.assert_frame_equal(split.valid, full.valid)
    pd.testing.assert_frame_equal(split.test, full.test)
    # the refit rows: the training sample and the validation rows the same rule keeps (about the budget)
    refit = split.development.iloc[split.refit_rows]
    assert refit["label"].sum() == dev["label"].sum()
    assert abs(len(refit) - budget) < 0.1 * budget
    assert split.sizes()["development"] == len(refit) and full.sizes()["development"] == len(dev)
    assert split.folds[0][1].tolist() == list(range(len(split.train), len(split.development)))
    # the rows a reader pre-sampled with the whole set's rate split the same way
    presampled = frame.loc[
        ~frame["snapshot_date"].isin(full.train["snapshot_date"].unique())
        | sample_mask(frame, split.sampling_rate, cfg.seed)
    ]
    again = out_of_time_split(presampled, cfg, split.sampling_rate)
    pd.testing.assert_frame_equal(again.development, split.development)
    assert np.array_equal(again.refit_rows, split.refit_rows)
