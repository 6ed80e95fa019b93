"""Fixtures for the models tests: synthetic training frames of the training-set schema."""

from __future__ import annotations

import pytest

from tests.models.synthetic import SyntheticSet, make_training_set


@pytest.fixture(scope="session")
def training_set() -> SyntheticSet:
    """600 customers x 5 snapshots (2 weeks apart), labels from a known logistic model."""
    return make_training_set()


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One local SQLite MLflow store for the models tests (creating a store costs seconds): (uri, experiment id).
    Tests register models under their own names so they do not see each other's versions."""
    import mlflow

    from churn_pipeline.models.registry import use_tracking

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    use_tracking(uri)
    exp = mlflow.create_experiment("models-tests", artifact_location=(root / "artifacts").as_uri())
    return uri, exp
