"""The ChurnModel: calibrated predictions per row, contributions summing to the log-odds, pyfunc round trip."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.types.schema import AnyType

from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.models.churn_model import ChurnModel
from churn_pipeline.models.registry import log_churn_model, use_tracking
from tests.models.synthetic import fit_churn_model, make_training_set


@pytest.fixture(scope="module")
def fitted():
    ts = make_training_set(n_customers=800, snapshots=4, seed=8)
    model, split = fit_churn_model(ts)
    return model, split


def test_predict_gives_calibrated_probabilities_per_row(fitted):
    model, split = fitted
    p = model.predict(None, split.test)
    assert isinstance(p, np.ndarray) and p.shape == (len(split.test),)
    assert ((p > 0) & (p < 1)).all()
    assert np.array_equal(p, model.calibrator.transform(model.predict_raw(split.test)))
    # extra columns are ignored, column order does not matter
    shuffled = split.test[list(reversed(split.test.columns))]
    assert np.array_equal(model.predict(None, shuffled), p)


def test_contributions_sum_to_the_raw_log_odds(fitted):
    model, split = fitted
    c = model.contributions(split.test)
    assert list(c.columns) == model.feature_names and c.index.equals(split.test.index)
    with_bias = model.contributions(split.test, include_bias=True)
    raw = model.predict_raw(split.test)
    assert np.allclose(with_bias.sum(axis=1), np.log(raw / (1 - raw)), atol=1e-6)
    assert np.allclose(with_bias.drop(columns="_bias"), c)


def test_missing_feature_column_names_it(fitted):
    model, split = fitted
    with pytest.raises(DataValidationError, match="complaints_30d"):
        model.predict(None, split.test.drop(columns=["complaints_30d"]))


@pytest.fixture(scope="module")
def loaded(fitted, mlflow_store):
    """The fitted model logged to a real MLflow store and loaded back as a pyfunc."""
    model, split = fitted
    uri, exp = mlflow_store
    use_tracking(uri)
    with mlflow.start_run(experiment_id=exp):
        info = log_churn_model(model, split.test)
    return mlflow.pyfunc.load_model(info.model_uri)


def test_pyfunc_round_trip_gives_identical_predictions(fitted, loaded):
    model, split = fitted

    # through the signature: categoricals as strings, with a never-seen category and a missing one
    frame = split.test.copy()
    frame.iloc[:3, frame.columns.get_loc("plan")] = np.nan
    features = model.input_frame(frame)
    features.iloc[3, features.columns.get_loc("region")] = "atlantis"
    expected = model.predict(None, features)
    got = loaded.predict(features)
    assert np.array_equal(np.asarray(got), expected)
    assert np.array_equal(model.predict(None, frame.assign(region=features["region"])), expected)

    inner = loaded.unwrap_python_model()
    assert isinstance(inner, ChurnModel)
    assert np.array_equal(inner.predict(None, split.test), model.predict(None, split.test))
    assert inner.reference == model.reference and inner.metadata == model.metadata
    # categoricals and integers pass MLflow's enforcement untouched (AnyType; see registry.serving_signature),
    # floats are checked as double
    sig = loaded.metadata.get_input_schema().input_types_dict()
    assert isinstance(sig["plan"], AnyType) and isinstance(sig["tenure_days"], AnyType)
    assert sig["monthly_fee"].name == "double" and sig["days_since_last_login"].name == "double"


def test_signature_rejects_a_frame_without_a_feature(fitted, loaded):
    model, split = fitted
    with pytest.raises(mlflow.exceptions.MlflowException, match="logins_30d"):
        loaded.predict(model.input_frame(split.test).drop(columns=["logins_30d"]))
    assert isinstance(pd.Series(loaded.predict(model.input_frame(split.test.head(3)))), pd.Series)


def test_array_input_predicts_exactly_what_the_frame_input_does(fitted):
    # Scoring feeds the booster a float array (codes of the training categories); it must be the same model.
    from churn_pipeline.models.training import lightgbm_matrix

    model, split = fitted
    test = split.test.copy()
    cat = model.categorical_features[0]
    values = test[cat].astype(object)
    values.iloc[0] = "a category never seen in training"
    values.iloc[1] = None
    test[cat] = values.astype("category")
    numeric = next(f for f in model.feature_names if f not in model.categories)
    test.loc[test.index[2], numeric] = np.nan
    from_frame = model.booster.predict(lightgbm_matrix(test, model.feature_names, model.categories))
    assert np.array_equal(model.predict_raw(test), from_frame)
    contrib_frame = model.booster.predict(
        lightgbm_matrix(test, model.feature_names, model.categories), pred_contrib=True
    )
    assert np.allclose(model.contributions(test, include_bias=True).to_numpy(), contrib_frame)


@pytest.mark.parametrize("candidates", [("logistic",), ("lightgbm", "logistic", "blend")])
def test_any_candidate_can_be_the_model_with_additive_contributions(candidates):
    import cloudpickle

    ts = make_training_set(n_customers=500, snapshots=4, seed=9)
    model, split = fit_churn_model(ts, candidates=candidates)
    if candidates == ("logistic",):
        assert model.candidate == "logistic" and model.booster is None
    raw = model.predict_raw(split.test)
    with_bias = model.contributions(split.test, include_bias=True, method="path")
    assert list(with_bias.columns) == [*model.feature_names, "_bias"]
    assert np.allclose(with_bias.sum(axis=1), np.log(raw / (1 - raw)), atol=1e-6)
    again = cloudpickle.loads(cloudpickle.dumps(model))
    assert np.array_equal(again.predict(None, split.test), model.predict(None, split.test))


def test_a_model_pickled_before_candidates_still_scores(fitted):
    # versions registered before this change hold `booster` directly
    model, split = fitted
    state = {k: v for k, v in model.__dict__.items() if k != "estimator"}
    state["booster"] = model.booster
    old = ChurnModel.__new__(ChurnModel)
    old.__setstate__(state)
    assert np.array_equal(old.predict(None, split.test), model.predict(None, split.test))
