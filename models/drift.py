"""Feature drift: a reference profile of the training features and the population stability index (PSI).

Numeric features are binned by their training deciles (plus a bin for missing values); categorical features by
their training categories (plus `other` for categories never seen in training and `missing`). PSI per feature
is sum((a - e) * ln(a / e)) over bins, with expected fractions e from training and actual fractions a from the
new frame; fractions are floored at `EPSILON` so an empty bin does not make it infinite.

A reference may also carry `trend_psi` (each feature's PSI between the first and the last labelled snapshot of the
training set, from `trend_psi`) and `trend_dates` (those two dates): they tell the scoring gate which features
drift with time by themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.models.encoding import categorical_as_strings

EPSILON = 1e-4
PROFILE_VERSION = 1


def reference_profile(frame: pd.DataFrame, feature_names: list[str], categorical_features: list[str]) -> dict:
    """JSON-serialisable distribution profile of `feature_names` in `frame` (normally the training rows)."""
    _require_columns(frame, feature_names, "reference_profile")
    cats = set(categorical_features)
    features: dict[str, dict] = {}
    n = len(frame)
    for name in feature_names:
        col = frame[name]
        if name in cats:
            values = categorical_as_strings(col)
            counts = values.value_counts(dropna=True)
            counts = counts.sort_index()
            features[name] = {
                "kind": "categorical",
                "categories": [str(c) for c in counts.index],
                "fractions": [float(c) / n for c in counts.to_numpy()] if n else [],
                "other": 0.0,
                "missing": float(values.isna().sum()) / n if n else 0.0,
            }
        else:
            x = _numeric(col, name)
            finite = x[~np.isnan(x)]
            if finite.size:
                edges = np.unique(np.quantile(finite, np.linspace(0.1, 0.9, 9)))
            else:
                edges = np.array([], dtype=float)
            counts = _numeric_bin_counts(x, edges)
            features[name] = {
                "kind": "numeric",
                "edges": [float(e) for e in edges],
                "fractions": [float(c) / n for c in counts[:-1]] if n else [],
                "missing": float(counts[-1]) / n if n else 0.0,
            }
    return {"version": PROFILE_VERSION, "rows": int(n), "epsilon": EPSILON, "features": features}


def trend_psi(
    first: pd.DataFrame, last: pd.DataFrame, feature_names: list[str], categorical_features: list[str]
) -> dict[str, float]:
    """PSI of every feature between two snapshots of the training set (normally its first and its last
    labelled one): how far each feature moved over the labelled history by itself. A feature that trends with
    time (the tenure of a closed cohort) moves there too, and the model was tested out of time on that trend."""
    reference = reference_profile(first, feature_names, categorical_features)
    return {name: round(float(v), 6) for name, v in population_stability(reference, last).items()}


def reference_trend(reference: dict | None) -> dict[str, float]:
    """The `trend_psi` a model's reference carries ({} for references made before it, or from one snapshot)."""
    return dict((reference or {}).get("trend_psi") or {})


def population_stability(reference: dict, frame: pd.DataFrame) -> pd.Series:
    """PSI of every feature of `reference` between the reference and `frame` (Series indexed by feature)."""
    return psi_from_bin_counts(reference, drift_bin_counts(reference, frame), len(frame))


def drift_bin_counts(reference: dict, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows of `frame` per drift bin of every feature of `reference`, in the profile's bin order.

    Numeric: the decile bins (-inf, e1], ..., (ek, inf), then missing; categorical: each training category,
    then `other` (unseen), then missing. Counts of disjoint parts of a frame add up to the counts of the
    whole, so an engine can count per partition and sum (`stages.score_spark` does on Spark).
    """
    profiles: dict[str, dict] = reference["features"]
    _require_columns(frame, list(profiles), "population_stability")
    counts = {}
    for name, prof in profiles.items():
        if prof["kind"] == "categorical":
            values = categorical_as_strings(frame[name])
            codes = pd.Categorical(values, categories=prof["categories"]).codes.astype(np.int64)
            k = len(prof["categories"])
            # code -1 is either missing or a category unseen in training
            codes = np.where(codes >= 0, codes, np.where(values.isna().to_numpy(), k + 1, k))
            counts[name] = np.bincount(codes, minlength=k + 2)
        else:
            counts[name] = _numeric_bin_counts(
                _numeric(frame[name], name), np.asarray(prof["edges"], dtype=float)
            )
    return counts


def psi_from_bin_counts(reference: dict, counts: dict[str, np.ndarray], n: int) -> pd.Series:
    """PSI per feature of `reference` from the `drift_bin_counts` of a frame of `n` rows."""
    eps = float(reference.get("epsilon", EPSILON))
    psi = {}
    for name, prof in reference["features"].items():
        if prof["kind"] == "categorical":
            expected = np.array([*prof["fractions"], prof["other"], prof["missing"]], dtype=float)
        else:
            expected = np.array([*prof["fractions"], prof["missing"]], dtype=float)
        actual = np.asarray(counts[name]) / n if n else np.zeros_like(expected)
        psi[name] = _psi(expected, actual, eps)
    return pd.Series(psi, name="psi", dtype=float)


def _psi(expected: np.ndarray, actual: np.ndarray, eps: float) -> float:
    e = np.maximum(expected, eps)
    a = np.maximum(actual, eps)
    value = float(np.sum((a - e) * np.log(a / e)))
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value


def _numeric_bin_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (-inf, e1], (e1, e2], ..., (ek, inf), then the missing count last."""
    missing = np.isnan(x)
    bins = np.searchsorted(edges, x[~missing], side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return np.append(counts, missing.sum())


def _numeric(col: pd.Series, name: str) -> np.ndarray:
    try:
        x = pd.to_numeric(col, errors="raise").astype("float64").to_numpy(na_value=np.nan)
    except (TypeError, ValueError) as e:
        raise DataValidationError(
            [f"feature '{name}': expected numbers, got {col.dtype} ({e}); check the feature frame's dtypes"]
        ) from e
    x[np.isinf(x)] = np.nan
    return x


def _require_columns(frame: pd.DataFrame, names: list[str], what: str) -> None:
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise DataValidationError(
            [f"{what}: feature column(s) {missing} missing from the frame; it has {list(frame.columns)[:20]}"]
        )
