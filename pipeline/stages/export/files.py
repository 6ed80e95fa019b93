"""File exports of the at-risk list: a CRM import CSV and JSON Lines, both written atomically.

The CSV is opened by people in spreadsheets: a text cell that starts like a formula (`=`, `+`, `-`, `@`,
tab, carriage return) gets a leading single quote (the OWASP CSV-injection rule), so `=HYPERLINK(...)` in a
customer id or a reason is shown as text, never run. JSON Lines are read by programs and keep the text
as it is. Money is rounded to cents in both.
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churn_pipeline.core.artifacts import CRM_COLUMNS
from churn_pipeline.data.io import atomic_write_text
from churn_pipeline.stages.export.target import Delivery, ExportContext, ExportTarget, register

# Every column but the numbers: ids, date, tier, reasons, action, model version.
TEXT_COLUMNS = tuple(
    c
    for c in CRM_COLUMNS
    if c not in ("rank", "churn_probability", "expected_value_at_risk", "uplift", "expected_saved_value")
)
# Columns added after the first lists were published (empty unless ranked by saved value): a list scored
# by an older version is exported with them empty.
_LATER_COLUMNS = ("uplift", "expected_saved_value")


def crm_frame(at_risk: pd.DataFrame) -> pd.DataFrame:
    """The at-risk list in the CRM layout: stable column order, ISO dates, rounded numbers, strings for text."""
    missing = [c for c in CRM_COLUMNS if c not in at_risk.columns and c not in _LATER_COLUMNS]
    if missing:
        raise ValueError(
            f"at-risk list lacks columns {missing}; expected {list(CRM_COLUMNS)} (a list published by an "
            "older version: re-run `churn score --as-of` for its date)"
        )
    out = pd.DataFrame(
        {
            "customer_id": at_risk["customer_id"].astype(str),
            "as_of": pd.to_datetime(at_risk["as_of"]).dt.strftime("%Y-%m-%d"),
            "rank": at_risk["rank"].astype("int64"),
            "churn_probability": at_risk["churn_probability"].astype("float64").round(6),
            "risk_tier": at_risk["risk_tier"].astype(object),
            "group": at_risk["group"].astype(str),
            "expected_value_at_risk": at_risk["expected_value_at_risk"].astype("float64").round(2),
            **{
                c: at_risk[c].astype("float64").round(6 if c == "uplift" else 2)
                if c in at_risk.columns
                else pd.Series(float("nan"), index=at_risk.index)
                for c in _LATER_COLUMNS
            },
            "reason_1": at_risk["reason_1"].astype(object),
            "reason_2": at_risk["reason_2"].astype(object),
            "reason_3": at_risk["reason_3"].astype(object),
            "suggested_action": at_risk["suggested_action"].astype(object),
            "model_version": at_risk["model_version"].astype(str),
        }
    )
    return out.reset_index(drop=True)


# OWASP CSV injection: the characters a spreadsheet reads as the start of a formula (or of a DDE call).
_FORMULA_START = r"[=+\-@\t\r]"


def neutralise_formulas(column: pd.Series) -> pd.Series:
    """Text cells that a spreadsheet would run as a formula, prefixed with `'` (missing values stay missing)."""
    text = column.astype(object)
    risky = text.str.match(_FORMULA_START, na=False)
    return text.mask(risky, "'" + text.astype(str))


def to_csv_text(at_risk: pd.DataFrame) -> str:
    """CSV text with a header, `\\n` line ends, empty cells for missing values, formula-safe text cells."""
    frame = crm_frame(at_risk)
    for col in TEXT_COLUMNS:
        frame[col] = neutralise_formulas(frame[col])
    return frame.to_csv(index=False, lineterminator="\n")


def to_jsonl_text(at_risk: pd.DataFrame) -> str:
    """One JSON object per customer and line; missing values are `null`, text stays UTF-8 (not escaped)."""
    frame = crm_frame(at_risk)
    if frame.empty:
        return ""
    # crm_frame rounds every float (probabilities to 6 decimals, money to cents): printing 6 decimals keeps
    # them exactly, where 15 printed binary noise (170.819999999999993 for 170.82)
    return frame.to_json(orient="records", lines=True, force_ascii=False, double_precision=6)


def write_csv(at_risk: pd.DataFrame, path: Path) -> Path:
    """Write the CRM import CSV (UTF-8) atomically to `path`."""
    atomic_write_text(to_csv_text(at_risk), path)
    return path


def write_jsonl(at_risk: pd.DataFrame, path: Path) -> Path:
    """Write the list as JSON Lines (UTF-8) atomically to `path`."""
    atomic_write_text(to_jsonl_text(at_risk), path)
    return path


@dataclass(frozen=True)
class FileReport:
    """Where a file export wrote the list."""

    path: Path


class _FileTarget(ExportTarget):
    """A file `<export dir>/at_risk_<as_of>.<name>`; its one setting is the shared `export.out_dir`."""

    @abstractmethod
    def write(self, at_risk: pd.DataFrame, path: Path) -> Path:
        """Write the list to `path` atomically."""

    def deliver(self, at_risk: pd.DataFrame, as_of: dt.date, context: ExportContext) -> Delivery:
        """Write the whole list atomically: every record is delivered, or the file is left as it was."""
        out = self.write(at_risk, context.export_dir / f"at_risk_{as_of.isoformat()}.{self.name}")
        return Delivery(len(at_risk), 0, 0, str(out), FileReport(out))


@register
class CsvTarget(_FileTarget):
    name = "csv"
    title = "csv"

    def write(self, at_risk: pd.DataFrame, path: Path) -> Path:
        return write_csv(at_risk, path)


@register
class JsonlTarget(_FileTarget):
    name = "jsonl"
    title = "jsonl"

    def write(self, at_risk: pd.DataFrame, path: Path) -> Path:
        return write_jsonl(at_risk, path)
