"""Model fitting: LightGBM early stopping, determinism, categories fixed at training, the logistic candidate."""

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.core.config import LightGBMConfig, ModelConfig, TuningConfig
from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.models import evaluate
from churn_pipeline.models.candidates import Context, LightGBMCandidate, Schema
from churn_pipeline.models.split import out_of_time_split
from churn_pipeline.models.training import (
    lightgbm_array,
    lightgbm_matrix,
    train_candidates,
    training_categories,
)
from tests.models.synthetic import CATEGORICAL, FEATURES, make_training_set


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(**{"candidates": ("lightgbm",), "tuning": TuningConfig(trials=0), **kw})


@pytest.fixture(scope="module")
def split():
    return out_of_time_split(make_training_set(n_customers=1500, snapshots=4, seed=5).frame, ModelConfig())


def test_lightgbm_learns_and_stops_early(split):
    cfg = _cfg(lightgbm=LightGBMConfig(learning_rate=0.3, n_estimators=400, early_stopping_rounds=10))
    trained = train_candidates(split, FEATURES, CATEGORICAL, cfg)
    fold_fit = trained.selection.developed["lightgbm"].fold_fits[0]
    assert 1 <= fold_fit.best_iteration < 400
    assert fold_fit.booster.num_trees() == fold_fit.best_iteration  # truncated to the best iteration
    assert len(fold_fit.curve) == fold_fit.best_iteration + 10  # the validation loss of every round
    assert evaluate.roc_auc(split.test["label"], trained.predict("lightgbm", split.test)) > 0.7
    assert trained.categories["plan"] == ["basic", "premium", "pro"]


def test_training_is_deterministic_for_a_seed(split):
    cfg = _cfg(candidates=("lightgbm", "logistic", "blend"), lightgbm=LightGBMConfig(n_estimators=50), seed=7)
    a = train_candidates(split, FEATURES, CATEGORICAL, cfg)
    b = train_candidates(split, FEATURES, CATEGORICAL, cfg)
    for name in ("lightgbm", "logistic", "blend"):
        assert np.array_equal(a.predict(name, split.test), b.predict(name, split.test))


def test_categories_are_fixed_from_training(split):
    trained = train_candidates(
        split,
        FEATURES,
        CATEGORICAL,
        _cfg(candidates=("lightgbm", "logistic"), lightgbm=LightGBMConfig(n_estimators=30)),
    )
    test = split.test
    as_text = test.assign(plan=test["plan"].astype(str), region=test["region"].astype(object))
    unseen = test.assign(plan="enterprise")
    missing = test.assign(plan=pd.Series([None] * len(test), index=test.index, dtype=object))
    for name in ("lightgbm", "logistic"):
        assert np.array_equal(trained.predict(name, test), trained.predict(name, as_text))
        # a category never seen in training scores like a missing value, not like some other category
        assert np.array_equal(trained.predict(name, unseen), trained.predict(name, missing))
    m = lightgbm_matrix(unseen, FEATURES, trained.categories)
    assert list(m["plan"].cat.categories) == trained.categories["plan"] and m["plan"].isna().all()


def test_logistic_is_a_working_model_and_survives_odd_values(split):
    trained = train_candidates(split, FEATURES, CATEGORICAL, _cfg(candidates=("logistic",)))
    p = trained.predict("logistic", split.test)
    assert ((p > 0) & (p < 1)).all()
    assert evaluate.roc_auc(split.test["label"], p) > 0.7
    odd = split.test.assign(region="mars", days_since_last_login=np.inf, tenure_days=10**9)
    assert np.isfinite(trained.predict("logistic", odd)).all()
    x = lightgbm_array(odd, FEATURES, trained.categories)
    assert np.isfinite(trained.fitted("logistic").contributions(x)).all()


def test_bad_labels_are_a_clear_error(split):
    frame = pd.concat([split.development, split.test])
    bad = frame.assign(label=frame["label"].astype(float).where(np.arange(len(frame)) % 7 != 0))
    with pytest.raises(DataValidationError, match="label"):
        train_candidates(out_of_time_split(bad, ModelConfig()), FEATURES, CATEGORICAL, _cfg())
    with pytest.raises(DataValidationError, match="monthly_fee_x"):
        train_candidates(split, [*FEATURES, "monthly_fee_x"], CATEGORICAL, _cfg())


def test_thread_count_is_configured_or_one_for_small_data():
    from churn_pipeline.models.training import compute_threads

    assert compute_threads(1_000) == 1
    assert compute_threads(1_000, configured=3) == 3
    assert compute_threads(10_000_000) >= 1


# ------------------------------------------------------------------- float32 matrices and sampled training
def test_float32_matrix_is_the_float64_one_within_float32_precision(split):
    cats = training_categories(split.development, CATEGORICAL)
    x64 = lightgbm_array(split.development, FEATURES, cats)
    x32 = lightgbm_array(split.development, FEATURES, cats, dtype=np.float32)
    assert x32.dtype == np.float32 and x32.shape == x64.shape and x32.flags["F_CONTIGUOUS"]
    assert np.array_equal(np.isnan(x32), np.isnan(x64))
    assert np.array_equal(x32, x64.astype(np.float32), equal_nan=True)
    np.testing.assert_allclose(x32, x64, rtol=2**-24, equal_nan=True)


def test_lightgbm_on_the_float32_matrix_is_the_float64_model_where_values_are_float32(split):
    cats = training_categories(split.development, CATEGORICAL)
    x64 = lightgbm_array(split.development, FEATURES, cats)
    x64[:, FEATURES.index("tenure_days")] += 0.25  # representable fractions: the data is not all integers
    x32 = x64.astype(np.float32)
    assert np.array_equal(x32.astype(np.float64), x64, equal_nan=True)  # every value is a float32
    y = split.development["label"].to_numpy(dtype=np.float64)
    schema = Schema(FEATURES, {FEATURES.index(c): len(cats[c]) for c in CATEGORICAL})
    cand = LightGBMCandidate(Context(schema, _cfg()))
    settings = {**cand.default_settings(x64, y, split.folds), "n_estimators": 40}
    a, b = cand.fit(x64, y, settings), cand.fit(x32, y, settings)
    assert a.model.model_to_string() == b.model.model_to_string()
    assert np.array_equal(a.log_odds(x64), b.log_odds(x32))


def test_sampled_training_is_calibrated_back_to_the_unsampled_churn_rate():
    ts = make_training_set(n_customers=6000, snapshots=5, seed=11)
    cfg = _cfg(candidates=("lightgbm", "logistic"), lightgbm=LightGBMConfig(n_estimators=60))
    full = out_of_time_split(ts.frame, cfg)
    sampled = out_of_time_split(ts.frame, cfg.model_copy(update={"max_training_rows": 6000}))
    assert sampled.sampling_rate < 0.5
    y = full.test["label"].to_numpy()
    for name in ("lightgbm", "logistic"):
        trained = train_candidates(
            sampled, FEATURES, CATEGORICAL, cfg.model_copy(update={"candidates": (name,)})
        )
        raw = trained.fitted(name).predict_raw(lightgbm_array(full.test, FEATURES, trained.categories))
        p = trained.predict(name, full.test)
        # fitted on a sample rich in churners, the raw probabilities are far too high; calibration on the
        # whole validation snapshot brings them back to the churn rate
        assert raw.mean() > 1.5 * y.mean()
        assert abs(p.mean() - y.mean()) < 0.15 * y.mean()
        assert evaluate.expected_calibration_error(y, p) < 0.02
        unsampled = train_candidates(
            full, FEATURES, CATEGORICAL, cfg.model_copy(update={"candidates": (name,)})
        )
        q = unsampled.predict(name, full.test)
        assert abs(p.mean() - q.mean()) < 0.15 * y.mean()
        assert evaluate.roc_auc(y, p) > evaluate.roc_auc(y, q) - 0.03
