"""File exports of the at-risk list: a CRM import CSV and JSON Lines, both written atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.io import atomic_write_text

# The CRM import layout: fixed column order, so a CRM mapping set up once keeps working.
CRM_COLUMNS = (
    "customer_id",
    "as_of",
    "rank",
    "churn_probability",
    "risk_tier",
    "expected_value_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "suggested_action",
    "model_version",
)


def crm_frame(at_risk: pd.DataFrame) -> pd.DataFrame:
    """The at-risk list in the CRM layout: stable column order, ISO dates, rounded numbers, strings for text."""
    missing = [c for c in CRM_COLUMNS if c not in at_risk.columns]
    if missing:
        raise ValueError(f"at-risk list lacks columns {missing}; expected {list(CRM_COLUMNS)}")
    out = pd.DataFrame(
        {
            "customer_id": at_risk["customer_id"].astype(str),
            "as_of": pd.to_datetime(at_risk["as_of"]).dt.strftime("%Y-%m-%d"),
            "rank": at_risk["rank"].astype("int64"),
            "churn_probability": at_risk["churn_probability"].astype("float64").round(6),
            "risk_tier": at_risk["risk_tier"].astype(object),
            "expected_value_at_risk": at_risk["expected_value_at_risk"].astype("float64").round(2),
            "reason_1": at_risk["reason_1"].astype(object),
            "reason_2": at_risk["reason_2"].astype(object),
            "reason_3": at_risk["reason_3"].astype(object),
            "suggested_action": at_risk["suggested_action"].astype(object),
            "model_version": at_risk["model_version"].astype(str),
        }
    )
    return out.reset_index(drop=True)


def to_csv_text(at_risk: pd.DataFrame) -> str:
    """CSV text with a header, `\\n` line ends, empty cells for missing values."""
    return crm_frame(at_risk).to_csv(index=False, lineterminator="\n")


def to_jsonl_text(at_risk: pd.DataFrame) -> str:
    """One JSON object per customer and line; missing values are `null`, text stays UTF-8 (not escaped)."""
    frame = crm_frame(at_risk)
    if frame.empty:
        return ""
    return frame.to_json(orient="records", lines=True, force_ascii=False, double_precision=15)


def write_csv(at_risk: pd.DataFrame, path: Path) -> Path:
    """Write the CRM import CSV (UTF-8) atomically to `path`."""
    atomic_write_text(to_csv_text(at_risk), path)
    return path


def write_jsonl(at_risk: pd.DataFrame, path: Path) -> Path:
    """Write the list as JSON Lines (UTF-8) atomically to `path`."""
    atomic_write_text(to_jsonl_text(at_risk), path)
    return path
