"""One spelling of categorical values for training, scoring, the MLflow signature and drift.

Categories are compared as strings: a training frame with a `category` column of booleans or integers and a
scoring frame that arrives as plain strings (e.g. through the MLflow signature) agree on "True" / "3".
"""

from __future__ import annotations

import pandas as pd


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
