"""Same KPI definitions, same numbers: `churn kpis` of a simulated company on Spark equals DuckDB's."""

from __future__ import annotations

import pandas as pd
import pytest

from churn_pipeline.core.config import Config, KpiConfig
from churn_pipeline.data.io import open_source
from churn_pipeline.stages.kpis import compute_kpis

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.mark.parametrize("period", ["month", "week"])
def test_kpis_on_spark_equal_duckdb(spark, small_company: Config, period: str) -> None:
    cfg = small_company.model_copy(
        update={"kpis": KpiConfig(period=period, periods=4, segments=("plan", "loyalty_member"))}
    )
    spark_data = cfg.data.model_copy(update={"engine": "spark"})
    duck, periods = compute_kpis(cfg, open_source(cfg.data.source, cfg=cfg.data))
    on_spark, spark_periods = compute_kpis(cfg, open_source(cfg.data.source, cfg=spark_data))
    assert spark_periods == periods
    assert len(duck) == 4 * (1 + 3 + 2) and duck["lost_customers"].sum() > 0
    assert list(on_spark.columns) == list(duck.columns)
    pd.testing.assert_frame_equal(on_spark, duck, check_dtype=False, check_exact=False, rtol=1e-9)
