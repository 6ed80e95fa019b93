"""The deployable churn model: the chosen candidate (`models.candidates`: LightGBM, logistic, blend, ...) +
calibrator + the feature contract, as an MLflow pyfunc model.

Categorical features travel as strings in the MLflow signature (a `category` dtype is a pandas detail MLflow
cannot declare); `predict` accepts strings, objects or `category` columns and casts them to the categories
seen in training, so unseen or missing categories are scored as LightGBM's "missing". Columns other than the
features (customer_id, snapshot_date, ...) are ignored.
"""

from __future__ import annotations

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.models import explain
from churn_pipeline.models.calibration import Calibrator
from churn_pipeline.models.candidates import Fitted, LightGBMFitted
from churn_pipeline.models.encoding import categorical_as_strings, coerce_features
from churn_pipeline.models.training import lightgbm_array


def mlflow_column_type(dtype) -> str:
    """MLflow signature type of a numeric training column (categoricals are always 'string')."""
    np_dtype = np.dtype(getattr(dtype, "numpy_dtype", dtype))
    if np_dtype.kind == "b":
        return "boolean"
    if np_dtype.kind in "iu":
        return "long" if np_dtype.itemsize > 4 else "integer"
    if np_dtype.kind == "f" and np_dtype.itemsize <= 4:
        return "float"
    return "double"


class ChurnModel(mlflow.pyfunc.PythonModel):
    """Calibrated churn probability of each row of a feature frame, plus per-feature contributions."""

    def __init__(
        self,
        estimator: Fitted,
        calibrator: Calibrator,
        feature_names: list[str],
        categorical_features: list[str],
        categories: dict[str, list[str]],
        reference: dict,
        metadata: dict,
        column_types: dict[str, str] | None = None,
    ):
        self.estimator = estimator
        self.calibrator = calibrator
        self.feature_names = list(feature_names)
        self.categorical_features = [f for f in feature_names if f in set(categorical_features)]
        self.categories = {k: list(v) for k, v in categories.items()}
        self.reference = reference
        self.metadata = dict(metadata)
        self.column_types = dict(column_types or {})

    def __setstate__(self, state: dict) -> None:
        # versions registered before candidates held a bare LightGBM booster: wrap it, so the promotion gate
        # can still re-score such a champion
        if "estimator" not in state and "booster" in state:
            booster = state.pop("booster")
            state["estimator"] = LightGBMFitted(
                model=booster, best_iteration=booster.num_trees(), settings={}
            )
        self.__dict__.update(state)

    @property
    def booster(self) -> lgb.Booster | None:
        """The LightGBM booster of the model (a blend's LightGBM member), None for models without trees."""
        return self.estimator.booster

    @property
    def candidate(self) -> str:
        """Name of the candidate type (`models.candidates.CANDIDATES`)."""
        return self.estimator.name

    # -- scoring -------------------------------------------------------------------------------------------
    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature columns of `frame` as the model's float array (category codes of the training categories,
        NaN for missing or unseen; missing columns are an error)."""
        frame = coerce_features(frame, self.feature_names, self.categories)
        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(frame)
        missing = [f for f in self.feature_names if f not in frame.columns]
        if missing:
            raise DataValidationError(
                [
                    f"feature frame: column(s) {missing} required by the model are missing; the model was trained "
                    f"on {len(self.feature_names)} features: build features with the same feature config "
                    f"(or retrain with `churn train`)"
                ]
            )
        return lightgbm_array(frame, self.feature_names, self.categories)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated model probabilities."""
        return self.estimator.predict_raw(self.matrix(frame))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        """Calibrated churn probabilities, one per row of `model_input`."""
        return self.calibrator.transform(self.predict_raw(model_input))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Same as `predict(None, frame)`."""
        return self.predict(None, frame)

    def contributions(
        self, frame: pd.DataFrame, include_bias: bool = False, method: explain.Attribution = "treeshap"
    ) -> pd.DataFrame:
        """Per-feature contributions in raw log-odds, one column per feature, same index as `frame`;
        `include_bias` adds the bias as column `_bias` (contributions + bias = raw log-odds). `method`
        (TreeSHAP or path, `models.explain`) applies to trees; linear models' contributions are exact."""
        values = self.estimator.contributions(self.matrix(frame), method=method)
        out = pd.DataFrame(values[:, :-1], index=frame.index, columns=self.feature_names)
        if include_bias:
            out[explain.BIAS_COLUMN] = values[:, -1]
        return out

    # -- MLflow contract -------------------------------------------------------------------------------------
    def input_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Features of `frame` in the signature's types (categoricals as strings, missing as None)."""
        cols = {}
        for name in self.feature_names:
            cols[name] = categorical_as_strings(frame[name]) if name in self.categories else frame[name]
        return pd.DataFrame(cols, index=frame.index)

    def signature(self, example: pd.DataFrame) -> ModelSignature:
        """Named columns: categoricals 'string', numbers as typed in training; output a float64 vector."""
        specs = []
        for name in self.feature_names:
            if name in self.categories:
                specs.append(ColSpec("string", name))
            else:
                specs.append(
                    ColSpec(self.column_types.get(name) or mlflow_column_type(example[name].dtype), name)
                )
        return ModelSignature(inputs=Schema(specs), outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]))
