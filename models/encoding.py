"""One spelling of categorical values for training, scoring, the MLflow signature and drift.

Categories are compared as strings: a training frame with a `category` column of booleans or integers and a
scoring frame that arrives as plain strings (e.g. through the MLflow signature) agree on "True" / "3".
"""

from __future__ import annotations

import pandas as pd

from churn_pipeline.core.errors import DataValidationError


def _str_categories(col: pd.Series) -> pd.Series:
    """A category column whose categories are strings (cheap: only the categories are renamed)."""
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("string").astype("category")
    if all(isinstance(c, str) for c in col.cat.categories):
        return col
    return col.cat.rename_categories([str(c) for c in col.cat.categories])


def categorical_as_strings(col: pd.Series) -> pd.Series:
    """Values as Python strings (object dtype), missing as None."""
    s = _str_categories(col).astype(object)
    return s.where(col.notna().to_numpy(), None)


def with_categories(col: pd.Series, categories: list[str]) -> pd.Series:
    """`col` as a category column with exactly `categories`; unseen values and missing become NaN."""
    return _str_categories(col).cat.set_categories(categories)


def observed_categories(col: pd.Series) -> list[str]:
    """Sorted distinct non-missing values of `col` as strings."""
    s = _str_categories(col)
    return sorted(s.cat.remove_unused_categories().cat.categories.tolist())


def coerce_features(frame, feature_names: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """`frame` with every numeric feature in a type the booster path reads exactly as in training: object or
    string columns (what MLflow's `AnyType` signature columns hand over: Python ints, floats, bools, None,
    pd.NA; or JSON from `mlflow models serve`) become float64 with NaN for missing. Typed columns (float, int,
    nullable Int64 with NA) and categoricals of any dtype (`with_categories` maps them) pass unchanged, so
    in-process scoring copies nothing. Other columns are kept; missing features are left for the caller to
    report. A numeric feature holding text is an error naming the column."""
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    converted, problems = {}, []
    for name in feature_names:
        if name not in frame.columns:
            continue
        col = frame[name]
        # categoricals of any dtype go through `with_categories` in the booster path; typed numbers are read as is
        if name in categories or (col.dtype != object and not isinstance(col.dtype, pd.StringDtype)):
            continue
        numbers = pd.to_numeric(col, errors="coerce").astype("float64")
        bad = numbers.isna() & col.notna()
        if bad.any():
            examples = ", ".join(repr(v) for v in col[bad].drop_duplicates().head(3))
            problems.append(
                f"feature frame: numeric feature {name!r} holds non-numbers ({int(bad.sum())} rows, e.g. {examples}): "
                f"send numbers or null"
            )
        converted[name] = numbers
    if problems:
        raise DataValidationError(problems)
    return frame.assign(**converted) if converted else frame
