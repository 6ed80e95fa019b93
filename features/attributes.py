"""Static customer attributes (plan, region, contract, monthly_fee, ...) as model features.

Every `customers` column other than `customer_id`, `signup_date` and `churn_date` is an attribute known at
signup. Numeric columns become float features; string and boolean columns become categories (strings;
`compute_features` turns them into pandas `category`). `FeatureConfig` can force a column either way
(`categorical_attributes`, `numeric_attributes`; a forced number that does not parse becomes null) or
drop it (`exclude_attributes`). Other types (dates, timestamps, nested) are skipped with a log line unless
forced. Attribute features keep their column names.
"""

from __future__ import annotations

import datetime as dt

import ibis.expr.types as ir

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.features.base import active_customers, log

RESERVED_COLUMNS = ("customer_id", "signup_date", "churn_date")


def attribute_kinds(customers: ir.Table, cfg: FeatureConfig) -> dict[str, str]:
    """Attribute column -> 'numeric' | 'categorical', in table order, after the config overrides."""
    schema = customers.schema()
    available = [c for c in schema.names if c not in RESERVED_COLUMNS]
    for key in ("categorical_attributes", "numeric_attributes", "exclude_attributes"):
        for name in getattr(cfg, key):
            if name not in available:
                raise ConfigError(
                    f"features.{key} names '{name}', which is not an attribute column of customers; "
                    f"attribute columns are: {', '.join(available) or 'none'}"
                )
    both = set(cfg.categorical_attributes) & set(cfg.numeric_attributes)
    if both:
        raise ConfigError(
            f"features.categorical_attributes and features.numeric_attributes both name {sorted(both)}; keep each in one"
        )
    kinds: dict[str, str] = {}
    for name in available:
        dtype = schema[name]
        if name in cfg.exclude_attributes:
            continue
        if name in cfg.categorical_attributes:
            kinds[name] = "categorical"
        elif name in cfg.numeric_attributes or dtype.is_numeric() and not dtype.is_boolean():
            kinds[name] = "numeric"
        elif dtype.is_string() or dtype.is_boolean():
            kinds[name] = "categorical"
        else:
            log.info(
                "customers.%s has type %s, which is neither number nor category: not used as a feature "
                "(force it with features.numeric_attributes / categorical_attributes)",
                name,
                dtype,
            )
    return kinds


def attribute_columns(customers: ir.Table, cfg: FeatureConfig) -> dict[str, ir.Value]:
    """Attribute feature columns of `customers` (or of a filter of it): numbers as float64, categories as strings."""
    columns: dict[str, ir.Value] = {}
    for name, kind in attribute_kinds(customers, cfg).items():
        col = customers[name]
        if kind == "numeric":
            columns[name] = col.try_cast("float64") if col.type().is_string() else col.cast("float64")
        else:
            columns[name] = col.cast("string")
    return columns


def customer_attributes(customers: ir.Table, as_of: dt.date, cfg: FeatureConfig) -> ir.Table:
    """Per customer active at `as_of`: their static attributes."""
    active = active_customers(customers, as_of)
    return active.select("customer_id", **attribute_columns(active, cfg))
