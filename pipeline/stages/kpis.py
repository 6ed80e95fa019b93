"""`churn kpis`: compute the retention and service KPIs (`features.kpis`) of the latest complete periods and
write them under `<workdir>/kpis/` (Parquet and CSV, replaced together, never half-written)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn_pipeline.core.artifacts import KPIS_CSV_FILE, KPIS_FILE, kpis_dir
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.data.io import Source, atomic_directory, open_source
from churn_pipeline.features.kpis import (
    ALL,
    KPI_COLUMNS,
    REVENUE_WINDOW_DAYS,
    Period,
    complete_periods,
    retention_kpis,
)
from churn_pipeline.stages.export.files import neutralise_formulas

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KpiResult:
    """What `write_kpis` computed and where it wrote it."""

    frame: pd.DataFrame  # KPI_COLUMNS, one row per reported period and segment value, by period then segment
    parquet_path: Path
    csv_path: Path
    period: str  # month | week
    periods: tuple[Period, ...]  # the reported periods, ascending
    segments: tuple[str, ...]
    data_end_date: dt.date
    clv_value: str  # what the CLV's monthly value is

    def overall(self) -> pd.DataFrame:
        """The rows of segment 'all', by period."""
        return self.frame[self.frame["segment"] == ALL]


def compute_kpis(cfg: Config, source: Source) -> tuple[pd.DataFrame, tuple[Period, ...]]:
    """The KPI frame of the latest `kpis.periods` complete periods (the CLV hazard also reads the periods just
    before them), sorted by period, segment ('all' first) and segment value."""
    k = cfg.kpis
    if cfg.label.kind == "inactivity":
        log.warning(
            "label.kind is inactivity: churn, retention and revenue churn count written cancellations "
            "(customers.churn_date) only, which such data does not have; read them as 0 by definition"
        )
    reported = complete_periods(source.data_end_date, k.period, k.periods)
    computed = complete_periods(source.data_end_date, k.period, k.periods + k.clv_hazard_periods - 1)
    expr = retention_kpis(source.tables, computed, k, k.period, cfg.scoring.value_column)
    frame = expr.to_pyarrow().to_pandas(date_as_object=True)
    frame = frame[frame["period_start"] >= reported[0].start]
    if frame.empty:
        raise DataValidationError(
            [
                f"customers: nobody had signed up by the end of the latest {k.periods} complete {k.period}s "
                f"(the data ends {source.data_end_date}); check customers.signup_date or raise kpis.periods"
            ]
        )
    order = frame.assign(_overall=frame["segment"] != ALL).sort_values(
        ["period_start", "_overall", "segment", "segment_value"]
    )
    return order[list(KPI_COLUMNS)].reset_index(drop=True), tuple(reported)


def kpis_csv_text(frame: pd.DataFrame) -> str:
    """The KPI table as CSV for spreadsheets: floats to 6 decimals, segment values (customer data) that a
    spreadsheet would run as a formula prefixed with `'`, empty cells for missing values."""
    out = frame.round(6)
    out["segment_value"] = neutralise_formulas(out["segment_value"])
    return out.to_csv(index=False, lineterminator="\n")


def write_kpis(cfg: Config, source: Source | None = None) -> KpiResult:
    """Compute the KPIs and publish `kpis.parquet` and `kpis.csv` under `<workdir>/kpis/` in one swap."""
    source = source if source is not None else open_source(cfg.data.source, cfg=cfg.data)
    frame, periods = compute_kpis(cfg, source)
    final = kpis_dir(cfg.workdir)
    with atomic_directory(final) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp / KPIS_FILE)
        (tmp / KPIS_CSV_FILE).write_text(kpis_csv_text(frame), encoding="utf-8")
    value = cfg.scoring.value_column
    clv_value = (
        f"customers.{value}"
        if value
        else f"revenue per customer (payments in the {REVENUE_WINDOW_DAYS} days before each period)"
    )
    log.info("KPIs of %d %ss x %d rows -> %s", len(periods), cfg.kpis.period, len(frame), final)
    return KpiResult(
        frame,
        final / KPIS_FILE,
        final / KPIS_CSV_FILE,
        cfg.kpis.period,
        periods,
        cfg.kpis.segments,
        source.data_end_date,
        clv_value,
    )
