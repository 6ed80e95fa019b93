"""Point-in-time correctness on Spark: the feature table at t is the same with or without the data after t
(the DuckDB version, per family, is tests/features/test_leakage.py; this runs its data through Spark)."""

from __future__ import annotations

import pandas as pd
import pytest

from churn_pipeline.core.config import DataConfig
from churn_pipeline.data.io import source_from_frames
from churn_pipeline.features import build
from tests.features.synthetic import as_known_at, random_frames, with_boundary_rows
from tests.features.test_leakage import AS_OFS, CFG

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ON_SPARK = DataConfig(engine="spark")


@pytest.mark.parametrize("as_of", AS_OFS, ids=str)
def test_feature_table_on_spark_ignores_everything_after_as_of(spark, as_of) -> None:
    frames = with_boundary_rows(random_frames(seed=5, n_customers=80), as_of)
    full = source_from_frames(frames, cfg=ON_SPARK)
    known = source_from_frames(as_known_at(frames, as_of), cfg=ON_SPARK)
    assert (full.engine, known.engine) == ("spark", "spark")
    with_future, without_future = (
        build.feature_table(s.tables, as_of, CFG).execute().sort_values("customer_id", ignore_index=True)
        for s in (full, known)
    )
    assert len(with_future) > 10, "the test data must give the families something to compute"
    pd.testing.assert_frame_equal(with_future, without_future)
