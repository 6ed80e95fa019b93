import numpy as np
import pandas as pd
import pytest

from models import evaluate
from models.split import out_of_time_split
from models.train import (
    SEARCH_SPACE,
    lightgbm_matrix,
    predict_baseline,
    predict_raw,
    train_baseline,
    train_lightgbm,
    tune_lightgbm,
)
from pipeline.config import LightGBMConfig, ModelConfig
from pipeline.errors import DataValidationError
from tests.models.synthetic import CATEGORICAL, FEATURES, make_training_set


@pytest.fixture(scope="module")
def split():
    return out_of_time_split(make_training_set(n_customers=1500, snapshots=4, seed=5).frame, ModelConfig())


def test_lightgbm_learns_and_stops_early(split):
    fit = train_lightgbm(
        split.train,
        split.valid,
        FEATURES,
        CATEGORICAL,
        LightGBMConfig(learning_rate=0.3, n_estimators=400, early_stopping_rounds=10),
        1,
    )
    assert 1 <= fit.best_iteration < 400
    assert fit.booster.num_trees() == fit.best_iteration  # truncated to the best iteration
    assert evaluate.roc_auc(split.test["label"], predict_raw(fit, split.test, FEATURES)) > 0.7
    assert fit.categories["plan"] == ["basic", "premium", "pro"]
    assert "binary_logloss" in fit.valid_metrics


def test_lightgbm_is_deterministic_for_a_seed(split):
    cfg = LightGBMConfig(n_estimators=50)
    a = predict_raw(
        train_lightgbm(split.train, split.valid, FEATURES, CATEGORICAL, cfg, 7), split.test, FEATURES
    )
    b = predict_raw(
        train_lightgbm(split.train, split.valid, FEATURES, CATEGORICAL, cfg, 7), split.test, FEATURES
    )
    assert np.array_equal(a, b)


def test_categories_are_fixed_from_training(split):
    fit = train_lightgbm(split.train, split.valid, FEATURES, CATEGORICAL, LightGBMConfig(n_estimators=30), 1)
    test = split.test
    as_text = test.assign(plan=test["plan"].astype(str), region=test["region"].astype(object))
    assert np.array_equal(predict_raw(fit, test, FEATURES), predict_raw(fit, as_text, FEATURES))
    # a category never seen in training scores like a missing value, not like some other category
    unseen = test.assign(plan="enterprise")
    missing = test.assign(plan=pd.Series([None] * len(test), index=test.index, dtype=object))
    assert np.array_equal(predict_raw(fit, unseen, FEATURES), predict_raw(fit, missing, FEATURES))
    m = lightgbm_matrix(unseen, FEATURES, fit.categories)
    assert list(m["plan"].cat.categories) == fit.categories["plan"] and m["plan"].isna().all()


def test_baseline_is_a_working_logistic_regression(split):
    model = train_baseline(split.train, FEATURES, CATEGORICAL, 0)
    p = predict_baseline(model, split.test, FEATURES)
    assert ((p > 0) & (p < 1)).all()
    assert evaluate.roc_auc(split.test["label"], p) > 0.7
    odd = split.test.assign(region="mars", days_since_last_login=np.inf)
    assert np.isfinite(predict_baseline(model, odd, FEATURES)).all()


def test_random_search_tries_the_budget_and_keeps_the_best(split):
    cfg = ModelConfig(tuning_trials=3, promotion_metric="log_loss", lightgbm=LightGBMConfig(n_estimators=60))
    res = tune_lightgbm(split.train, split.valid, FEATURES, CATEGORICAL, cfg)
    assert len(res.trials) == 4 and res.trials["trial"].tolist() == [0, 1, 2, 3]
    assert res.trials.loc[0, "num_leaves"] == cfg.lightgbm.num_leaves  # trial 0 = the configured params
    best_row = res.trials.loc[res.trials["valid_log_loss"].idxmin()]
    assert (
        res.best_config.num_leaves == best_row["num_leaves"]
        and res.best.best_iteration == best_row["best_iteration"]
    )
    for key, choices in SEARCH_SPACE.items():
        assert set(res.trials[key][1:]) <= set(choices)


def test_bad_labels_are_a_clear_error(split):
    bad = split.train.assign(label=split.train["label"].astype(float).where(split.train.index % 7 != 0))
    with pytest.raises(DataValidationError, match="label"):
        train_lightgbm(bad, split.valid, FEATURES, CATEGORICAL, LightGBMConfig(), 0)
    with pytest.raises(DataValidationError, match="monthly_fee"):
        train_baseline(split.train.drop(columns=["monthly_fee"]), FEATURES, CATEGORICAL, 0)


def test_thread_count_is_configured_or_one_for_small_data():
    from models.train import compute_threads

    assert compute_threads(1_000) == 1
    assert compute_threads(1_000, configured=3) == 3
    assert compute_threads(10_000_000) >= 1
