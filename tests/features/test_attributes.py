"""Static customer attributes: numbers, categories, config overrides and exclusions."""

from __future__ import annotations

import pandas as pd
import pytest

from churn_pipeline.core.config import FeatureConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.features import attributes
from tests.features.synthetic import AS_OF, rows_by_customer, source


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "signup_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-01"]),
            "churn_date": pd.to_datetime([None, None, "2024-03-01"]),
            "plan": ["basic", "pro", "pro"],
            "monthly_fee": [19.0, 39.5, 39.5],
            "seats": [1, 5, 2],
            "loyalty_member": [True, False, True],
            "region": ["north", "south", "east"],
            "zip": [1010, 2020, 3030],
            "score_text": ["1.5", "x", "2"],
            "first_order": pd.to_datetime(["2024-01-05", "2024-02-03", "2024-01-02"]),
        }
    )


def test_default_kinds_and_values_of_active_customers() -> None:
    src = source(customers=_customers())
    table = attributes.customer_attributes(src.tables.customers, AS_OF, FeatureConfig())
    # dates are neither numbers nor categories: skipped
    assert table.columns == (
        "customer_id",
        "plan",
        "monthly_fee",
        "seats",
        "loyalty_member",
        "region",
        "zip",
        "score_text",
    )
    rows = rows_by_customer(table)
    assert set(rows) == {1, 2}  # 3 churned before t
    assert rows[2]["plan"] == "pro" and rows[2]["monthly_fee"] == 39.5 and rows[2]["seats"] == 5.0
    assert rows[1]["loyalty_member"] == "true" and rows[2]["loyalty_member"] == "false"
    schema = table.schema()
    assert (
        schema["seats"].is_floating() and schema["plan"].is_string() and schema["loyalty_member"].is_string()
    )


def test_overrides_and_exclusions() -> None:
    cfg = FeatureConfig(
        categorical_attributes=("zip",), numeric_attributes=("score_text",), exclude_attributes=("region",)
    )
    table = attributes.customer_attributes(source(customers=_customers()).tables.customers, AS_OF, cfg)
    assert "region" not in table.columns
    rows = rows_by_customer(table)
    assert rows[1]["zip"] == "1010"
    assert rows[1]["score_text"] == 1.5
    assert rows[2]["score_text"] is None  # "x" does not parse as a number


@pytest.mark.parametrize(
    "cfg, message",
    [
        (FeatureConfig(categorical_attributes=("nope",)), "features.categorical_attributes names 'nope'"),
        (FeatureConfig(exclude_attributes=("churn_date",)), "features.exclude_attributes names 'churn_date'"),
        (FeatureConfig(categorical_attributes=("zip",), numeric_attributes=("zip",)), "both name ['zip']"),
    ],
)
def test_bad_overrides_are_config_errors(cfg: FeatureConfig, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        attributes.attribute_kinds(source(customers=_customers()).tables.customers, cfg)
    assert message in str(err.value)
