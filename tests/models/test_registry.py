"""The MLflow registry: the champion gate, its metric direction, and load errors that say how to fix them."""

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from churn_pipeline.core.errors import ModelNotFoundError
from churn_pipeline.models import evaluate
from churn_pipeline.models.registry import (
    CHALLENGER,
    CHAMPION,
    decide,
    load_model,
    log_churn_model,
    promotion_gate,
    register,
    use_tracking,
)
from tests.models.synthetic import fit_churn_model, make_training_set


@pytest.fixture(scope="module")
def models():
    ts = make_training_set(n_customers=1500, snapshots=4, seed=21)
    good, split = fit_churn_model(ts)
    worse, _ = fit_churn_model(ts, shuffle_labels=True, seed=1)
    worse2, _ = fit_churn_model(ts, shuffle_labels=True, seed=2)
    return {"good": good, "worse": worse, "worse2": worse2, "test": split.test}


def _log_and_register(store, name, model, test):
    uri, exp = store
    use_tracking(uri)
    with mlflow.start_run(experiment_id=exp) as run:
        info = log_churn_model(model, test)
    return register(MlflowClient(uri, uri), info.model_uri, name, run.info.run_id)


def _gate(store, name, version, model, test, metric="pr_auc"):
    value = evaluate.classification_metrics(test["label"], model.predict(None, test), 10)[metric]
    return promotion_gate(store[0], name, version, metric, value, test, 10)


def test_gate_promotes_a_better_model_and_refuses_a_worse_one(mlflow_store, models):
    name, test = "gate-test", models["test"]
    client = MlflowClient(mlflow_store[0], mlflow_store[0])

    v1 = _log_and_register(mlflow_store, name, models["worse"], test)
    first = _gate(mlflow_store, name, v1, models["worse"], test)
    assert first.promoted and first.champion_version is None and "no champion" in first.reason

    v2 = _log_and_register(mlflow_store, name, models["good"], test)
    better = _gate(mlflow_store, name, v2, models["good"], test)
    # the champion (v1) was re-scored on the same test rows
    worse_value = evaluate.pr_auc(test["label"], models["worse"].predict(None, test))
    assert better.promoted and better.champion_version == v1
    assert better.champion_value == pytest.approx(worse_value) and better.new_value > worse_value
    assert str(client.get_registered_model(name).aliases[CHAMPION]) == v2

    v3 = _log_and_register(mlflow_store, name, models["worse2"], test)
    refused = _gate(mlflow_store, name, v3, models["worse2"], test)
    assert not refused.promoted and refused.alias == CHALLENGER
    assert "does not beat the champion v" + v2 in refused.reason
    aliases = client.get_registered_model(name).aliases
    assert str(aliases[CHAMPION]) == v2 and str(aliases[CHALLENGER]) == v3
    assert client.get_model_version(name, v3).tags["gate.decision"] == CHALLENGER
    assert client.get_model_version(name, v2).tags["gate.decision"] == CHAMPION

    champion, version = load_model(mlflow_store[0], name)
    assert version == v2
    assert np.array_equal(champion.predict(None, test), models["good"].predict(None, test))
    _, version3 = load_model(mlflow_store[0], name, v3)
    assert version3 == v3


def test_gate_uses_the_direction_of_the_metric(mlflow_store, models):
    name, test = "gate-brier", models["test"]
    v1 = _log_and_register(mlflow_store, name, models["good"], test)
    assert _gate(mlflow_store, name, v1, models["good"], test, metric="brier").promoted
    v2 = _log_and_register(mlflow_store, name, models["worse"], test)
    d = _gate(mlflow_store, name, v2, models["worse"], test, metric="brier")
    assert not d.promoted and d.new_value > d.champion_value and "lower is better" in d.reason


def test_decide_rule():
    assert decide("brier", 0.05, 0.06, "1")[0]
    assert not decide("brier", 0.07, 0.06, "1")[0]
    assert decide("roc_auc", 0.8, 0.7, "4")[0]
    promoted, reason = decide("roc_auc", 0.7, 0.7, "4")
    assert not promoted and "v4" in reason


def test_load_model_errors_say_how_to_fix(mlflow_store, models, tmp_path):
    with pytest.raises(ModelNotFoundError, match="churn train"):
        load_model(f"sqlite:///{tmp_path / 'nothing' / 'mlflow.db'}", "churn-classifier")
    assert not (tmp_path / "nothing").exists()  # looking did not create a store
    with pytest.raises(ModelNotFoundError, match="no model registered as 'never-trained'"):
        load_model(mlflow_store[0], "never-trained")
    name = "no-champion"
    _log_and_register(mlflow_store, name, models["good"], models["test"])
    with pytest.raises(ModelNotFoundError, match="no 'champion' version"):
        load_model(mlflow_store[0], name)
    with pytest.raises(ModelNotFoundError, match=r"available versions: \[1\]"):
        load_model(mlflow_store[0], name, "7")
    model, version = load_model(mlflow_store[0], name, "1")
    assert version == "1" and model.feature_names == models["good"].feature_names
