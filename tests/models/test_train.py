import numpy as np
import pandas as pd
import pytest

from models import evaluate
from models.split import out_of_time_split
from models.train import lightgbm_array, lightgbm_matrix, train_candidates
from pipeline.config import LightGBMConfig, ModelConfig, TuningConfig
from pipeline.errors import DataValidationError
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
    from models.train import compute_threads

    assert compute_threads(1_000) == 1
    assert compute_threads(1_000, configured=3) == 3
    assert compute_threads(10_000_000) >= 1
