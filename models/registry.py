"""MLflow model logging, registration, the champion/challenger promotion gate, and loading a registered model.

Aliases: `champion` is what scoring uses by default; a new version that does not beat the champion on the
promotion metric (both scored on the SAME test snapshots) gets `challenger` instead. Versions carry tags
`gate.decision`, `gate.reason`, `gate.metric` and the compared values.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.models.signature import ModelSignature
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec

from churn_pipeline.core.config import redact
from churn_pipeline.core.errors import DataValidationError, ModelNotFoundError
from churn_pipeline.models import evaluate
from churn_pipeline.models.churn_model import ChurnModel, mlflow_column_type
from churn_pipeline.models.split import snapshot_dates
from churn_pipeline.models.uplift import UpliftModel

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
# Every distribution the logged model imports when it is loaded and predicts (unpickling ChurnModel imports
# models.churn_model -> churn_pipeline.models.training / calibration / explain / evaluate / encoding -> churn_pipeline.core.config and
# churn_pipeline.core.errors): the third-party half of a self-contained model; the other half is code_paths below.
# tests/models/test_portable_model.py installs exactly these into an empty venv and predicts there.
_REQUIREMENTS = (
    "mlflow",
    "cloudpickle",
    "lightgbm",
    "scikit-learn",
    "scipy",
    "threadpoolctl",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
)
# The subpackages the pickle refers to by module name (`churn_pipeline.models.churn_model.ChurnModel`, the
# calibrator, `churn_pipeline.core.errors`, the feature catalog its reasons name): logged as code_paths, which MLflow puts on sys.path before unpickling, so the model loads
# where churn-pipeline is not installed (`mlflow models serve`, Spark UDF executors, another project).
# Not models-from-code: the model's state (booster, fitted calibrator, training categories, drift reference)
# is a fitted Python object that cloudpickle already serialises whole; a from-code model would need a second
# serialisation of each part and a loader to keep in step with ChurnModel, for the same portability.
_CODE_PACKAGES = ("core", "features", "models")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the promotion gate for one new version."""

    version: str
    promoted: bool
    reason: str
    metric: str
    new_value: float
    champion_version: str | None = None
    champion_value: float | None = None

    @property
    def alias(self) -> str:
        return CHAMPION if self.promoted else CHALLENGER


def use_tracking(tracking_uri: str) -> None:
    """Point MLflow's tracking and registry at `tracking_uri` (MLflow keeps these process-wide)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///<path>` URI (absolute paths have a fourth slash), else None."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return Path(tracking_uri[len(prefix) :].split("?", 1)[0])


def pip_requirements() -> list[str]:
    """Pinned requirements of the pyfunc model: each distribution it imports, at the installed version (as
    MLflow pins its own inferred requirements)."""
    reqs = []
    for dist in _REQUIREMENTS:
        try:
            reqs.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(dist)
    return reqs


@contextmanager
def code_paths() -> Iterator[list[str]]:
    """A `churn_pipeline` folder with the subpackages the pickled model imports, for MLflow to copy into the
    model's `code/` (so `code/churn_pipeline/models/...` imports as `churn_pipeline.models...`)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "churn_pipeline"
        for name in _CODE_PACKAGES:
            source = Path(importlib.import_module(f"churn_pipeline.{name}").__file__).parent
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        yield [str(root)]


def serving_signature(model: ChurnModel | UpliftModel, example: pd.DataFrame) -> ModelSignature:
    """The input schema MLflow enforces before `predict`, chosen so a feature frame as `churn features` writes
    it passes (see below), and a float64 probability vector out.

    MLflow 3 enforces column types itself (mlflow.models.utils._enforce_mlflow_datatype) and drops columns
    the schema does not name (customer_id, as_of). What it accepts, checked against MLflow 3.17:
    - a `category` column matches no MLflow type ("Can not safely convert category to <U0"), not even
      'string' (object or StringDtype only);
    - 'long' casts with astype(int64), which fails on a nullable Int64 column holding NA;
    - 'double' takes only integers of at most 6 bytes, so int64 and Int64 columns fail too (unless all 0/1);
    - optional columns (required=False) are still type-checked when present, so that does not help.
    Hence: float features are 'double' (float32/64, Float64 with NA and small ints upcast safely); categorical,
    integer and boolean features are AnyType, which MLflow passes through unchanged, and
    `models.encoding.coerce_features` (first step of ChurnModel.matrix) turns them into what training read:
    numbers to float64 with NaN, categories to the training categories. Names stay required."""
    specs = []
    for name in model.feature_names:
        kind = None if name in model.categories else model.column_types.get(name)
        if name not in model.categories and kind is None:
            kind = mlflow_column_type(example[name].dtype)
        specs.append(ColSpec("double", name) if kind in ("double", "float") else ColSpec(AnyType(), name))
    return ModelSignature(inputs=Schema(specs), outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]))


def log_churn_model(model: ChurnModel | UpliftModel, example: pd.DataFrame) -> ModelInfo:
    """Log `model` as a self-contained pyfunc model in the active run: its source as code_paths, complete
    pinned requirements, the serving signature and an input example from `example`."""
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    # MLflow warns about every pickled python_model; ChurnModel is our own class, so the warning is noise
    pyfunc_log.setLevel(logging.ERROR)
    try:
        with code_paths() as code:
            return mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=model,
                signature=serving_signature(model, example),
                input_example=model.input_frame(example.head(5)),
                pip_requirements=pip_requirements(),
                code_paths=code,
            )
    finally:
        pyfunc_log.setLevel(level)


def register(
    client: MlflowClient,
    model_uri: str,
    name: str,
    run_id: str,
    description: str = "Churn classifier (LightGBM + calibration) of churn-pipeline.",
) -> str:
    """Register `model_uri` as a new version of `name` (created on first use); returns the version."""
    try:
        client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        client.create_registered_model(name, description=description)
    mv = client.create_model_version(name, model_uri, run_id=run_id)
    return str(mv.version)


def decide(
    metric: str, new_value: float, champion_value: float | None, champion_version: str | None
) -> tuple[bool, str]:
    """The gate rule: promote when there is no champion or the new value is strictly better."""
    direction = "lower" if metric in evaluate.LOWER_IS_BETTER else "higher"
    if champion_version is None:
        return True, f"no champion yet: the new version becomes champion ({metric} {new_value:.4f})"
    assert champion_value is not None
    if evaluate.better(metric, new_value, champion_value):
        return True, (
            f"{metric} {new_value:.4f} beats the champion v{champion_version} ({champion_value:.4f}) on the same "
            f"test snapshots ({direction} is better)"
        )
    return False, (
        f"{metric} {new_value:.4f} does not beat the champion v{champion_version} ({champion_value:.4f}) on the "
        f"same test snapshots ({direction} is better); it stays a challenger"
    )


def promotion_gate(
    tracking_uri: str,
    name: str,
    version: str,
    metric: str,
    new_value: float,
    test_frame: pd.DataFrame,
    list_size_pct: float,
) -> GateDecision:
    """Re-score the current champion on `test_frame` (which has `label`), compare on `metric`, set the alias
    (`champion` or `challenger`) on `version` and tag it with the decision."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    champion_version, champion_value = None, None
    try:
        champion, champion_version = load_model(tracking_uri, name, None)
    except ModelNotFoundError:
        champion = None
    if champion is not None and champion_version == version:
        champion = champion_version = None
    in_sample = champion is not None and _learnt(champion, test_frame)
    if in_sample:
        # Its final fit learnt these rows (model.final_fit: all): re-scoring it here would be in-sample. Its own
        # held-out figure on the same snapshots is the fair comparison; without one it keeps the alias.
        recorded = (champion.metadata.get("metrics") or {}).get(metric)
        same_dates = sorted(champion.metadata.get("test_snapshots") or []) == _snapshot_days(test_frame)
        if recorded is not None and same_dates:
            champion_value = float(recorded)
            promoted, reason = decide(metric, new_value, champion_value, champion_version)
            reason += (
                f" (v{champion_version} learnt these snapshots in its final fit: compared with its own held-out "
                f"test {metric})"
            )
        else:
            promoted, reason = (
                False,
                (
                    f"the champion v{champion_version} learnt the test snapshots "
                    f"({', '.join(_snapshot_days(test_frame))}) in its final fit and has no held-out {metric} on "
                    f"them, so the two cannot be compared fairly; v{version} stays a challenger (train again once "
                    f"newer labelled data exists, or set model.final_fit: development)"
                ),
            )
    elif champion is not None:
        try:
            p = champion.predict(None, test_frame)
        except DataValidationError as e:
            promoted = True
            reason = (
                f"the champion v{champion_version} cannot score the current features ({e.problems[0]}); "
                f"the new version replaces it"
            )
            champion_value = float("nan")
        else:
            champion_value = evaluate.classification_metrics(
                test_frame["label"].to_numpy(), p, list_size_pct
            )[metric]
            promoted, reason = decide(metric, new_value, champion_value, champion_version)
    else:
        promoted, reason = decide(metric, new_value, None, None)

    decision = GateDecision(
        version=str(version),
        promoted=promoted,
        reason=reason,
        metric=metric,
        new_value=float(new_value),
        champion_version=champion_version,
        champion_value=None if champion_value is None else float(champion_value),
    )
    client.set_registered_model_alias(name, decision.alias, decision.version)
    tags = {
        "gate.decision": decision.alias,
        "gate.reason": reason,
        "gate.metric": metric,
        "gate.value": f"{new_value:.6f}",
        "gate.champion_version": champion_version or "",
        "gate.champion_value": "" if champion_value is None else f"{champion_value:.6f}",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, decision.version, key, value)
    return decision


def _snapshot_days(frame: pd.DataFrame) -> list[str]:
    return [str(d) for d in snapshot_dates(frame)] if "snapshot_date" in frame.columns else []


def _learnt(model: ChurnModel, test_frame: pd.DataFrame) -> bool:
    """Whether `model`'s final fit learnt rows of `test_frame`'s snapshots (its test rows included, and they
    overlap); a single-snapshot model shares its date with every part, so the fit kind decides."""
    if (model.metadata.get("final_fit") or {}).get("kind") != "all":
        return False
    return bool(set(model.metadata.get("train_snapshots") or []) & set(_snapshot_days(test_frame)))


def _not_found(e: MlflowException) -> bool:
    return e.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def _model_version(
    tracking_uri: str, name: str, version: str | None, fix: str
) -> tuple[MlflowClient, ModelVersion]:
    """The registry entry of model `name` at `version` (the `champion` alias when None); ModelNotFoundError
    naming the versions there are, and `fix`, when there is none."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        raise ModelNotFoundError(f"no MLflow store at {db} (tracking URI {redact(tracking_uri)}): {fix}")
    use_tracking(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        registered = client.get_registered_model(name)
    except MlflowException as e:
        if not _not_found(e):
            raise
        raise ModelNotFoundError(
            f"no model registered as '{name}' in {redact(tracking_uri)}: {fix}"
        ) from None

    def available() -> list[int]:
        return sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))

    if version is None:
        aliases = registered.aliases or {}
        if CHAMPION not in aliases:
            raise ModelNotFoundError(
                f"model '{name}' has no '{CHAMPION}' version (versions: {available() or 'none'}): {fix}, or pass "
                f"a version explicitly"
            )
        version = str(aliases[CHAMPION])
    if not str(version).isdigit():
        raise ModelNotFoundError(
            f"model version must be a whole number, got {version!r}; available versions of '{name}': {available()}"
        )
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as e:
        if not _not_found(e):
            raise
        raise ModelNotFoundError(
            f"model '{name}' has no version {version!r}; available versions: {available() or 'none'} "
            f"({fix} to add one)"
        ) from None
    return client, mv


def load_model(
    tracking_uri: str,
    name: str,
    version: str | None = None,
    kind: type = ChurnModel,
    fix: str = "run `churn train` first",
) -> tuple[ChurnModel, str]:
    """The registered model `name` (version, or the `champion` alias when None) and its version; it must be a
    `kind` (a ChurnModel, or an UpliftModel for `churn train-uplift`'s models)."""
    _, mv = _model_version(tracking_uri, name, version, fix)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    model = pyfunc.unwrap_python_model()
    if not isinstance(model, kind):
        raise ModelNotFoundError(
            f"model '{name}' version {mv.version} is a {type(model).__name__}, not a churn-pipeline {kind.__name__}: "
            f"{fix}"
        )
    return model, str(mv.version)


@dataclass(frozen=True)
class ModelRun:
    """A registered version's MLflow training run: its metrics, tags and a reader of its artifacts."""

    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    tags: dict[str, str]
    tracking_uri: str

    def artifact(self, path: str) -> bytes | None:
        """The bytes of the run's artifact at `path` (e.g. `plots/calibration.png`), None when it was not logged."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=self.run_id, artifact_path=path, dst_path=tmp, tracking_uri=self.tracking_uri
                )
            except (MlflowException, OSError):
                return None
            return Path(local).read_bytes() if Path(local).is_file() else None


def model_run(
    tracking_uri: str, name: str, version: str | None = None, fix: str = "run `churn train` first"
) -> ModelRun:
    """The run that logged version `version` of `name` (the champion when None), without loading the model."""
    client, mv = _model_version(tracking_uri, name, version, fix)
    if not mv.run_id:
        raise ModelNotFoundError(f"model '{name}' version {mv.version} has no MLflow run: {fix}")
    run = client.get_run(mv.run_id)
    return ModelRun(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        aliases=tuple(mv.aliases or ()),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        tracking_uri=tracking_uri,
    )
