"""Names and places of what the nightly job publishes under the workdir: one place for each file name and
column list that scoring writes and the exports, the report and the tests read."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from churn_pipeline.core.errors import OutputMissingError

_DIR_RE = re.compile(r"^as_of=(\d{4}-\d{2}-\d{2})$")
SCORES_FILE = "scores.parquet"
AT_RISK_FILE = "at_risk.parquet"
MANIFEST_FILE = "manifest.json"
# Delivery state of the webhook export, kept beside the list it describes: a re-scored identical list keeps it.
WEBHOOK_LEDGER_FILE = "webhook_ledger.json"
TREATMENT, CONTROL = "treatment", "control"  # the at-risk list's `group` values

# `churn campaign-report`: the measured campaigns, under <workdir>/campaigns/ (Parquet and CSV)
CAMPAIGNS_DIR = "campaigns"
CAMPAIGN_REPORT_FILE = "campaign_report"

# `uplift` (P(churn) not contacted - P(churn) contacted) and `expected_saved_value` (uplift x value) are filled
# when the list is ranked by saved value (scoring.rank_by: saved_value), null otherwise.
SCORES_COLUMNS = (
    "customer_id",
    "churn_probability",
    "uplift",
    "expected_saved_value",
    "rank",
    "percentile",
    "as_of",
    "model_version",
)
AT_RISK_COLUMNS = (
    "customer_id",
    "churn_probability",
    "risk_tier",
    "group",  # treatment, or control: held out of the campaign (scoring.control_pct), never contacted
    "expected_value_at_risk",
    "uplift",
    "expected_saved_value",
    "reason_1",
    "reason_2",
    "reason_3",
    "suggested_action",
    "rank",
    "as_of",
    "model_version",
)
# The CRM import layout of the same columns: identifiers first, the model version last, a fixed order so a
# CRM mapping set up once keeps working.
_CRM_FIRST, _CRM_LAST = ("customer_id", "as_of", "rank"), ("model_version",)
CRM_COLUMNS = (
    *_CRM_FIRST,
    *(c for c in AT_RISK_COLUMNS if c not in _CRM_FIRST + _CRM_LAST),
    *_CRM_LAST,
)


UPLIFT_MODEL_SUFFIX = "-uplift"  # `churn train-uplift` registers <tracking.registered_model>-uplift


def uplift_model_name(registered_model: str) -> str:
    """The registry name of the uplift model beside the churn model `registered_model`."""
    return f"{registered_model}{UPLIFT_MODEL_SUFFIX}"


def score_dir(workdir: Path, as_of: dt.date) -> Path:
    """Where the outputs of one as-of date live."""
    return Path(workdir) / "scores" / f"as_of={as_of.isoformat()}"


def published_as_of_dates(workdir: Path) -> list[dt.date]:
    """As-of dates with a published at-risk list, ascending."""
    root = Path(workdir) / "scores"
    if not root.is_dir():
        return []
    dates = []
    for p in root.iterdir():
        m = _DIR_RE.match(p.name)
        if m and (p / AT_RISK_FILE).is_file():
            dates.append(dt.date.fromisoformat(m.group(1)))
    return sorted(dates)


def published_as_of(workdir: Path, as_of: dt.date | None) -> dt.date:
    """`as_of` when a list was published for it, else (None) the latest published date; OutputMissingError
    naming `churn score` when there is none."""
    dates = published_as_of_dates(workdir)
    where = Path(workdir) / "scores"
    if as_of is None:
        if not dates:
            raise OutputMissingError(
                f"nothing has been scored yet in {where}: run `churn score` first (no published at-risk list)"
            )
        return dates[-1]
    if as_of not in dates:
        shown = ", ".join(str(d) for d in dates[-5:]) or "none"
        raise OutputMissingError(
            f"no at-risk list scored as of {as_of} in {where} (scored: {shown}): run `churn score --as-of "
            f"{as_of}` first, or pick one of those dates"
        )
    return as_of


# `churn kpis`: the KPI table of the latest periods, replaced whole on every run (Parquet, and CSV for
# spreadsheets).
KPIS_DIR = "kpis"
KPIS_FILE = "kpis.parquet"
KPIS_CSV_FILE = "kpis.csv"


def kpis_dir(workdir: Path) -> Path:
    """Where `churn kpis` writes its table."""
    return Path(workdir) / KPIS_DIR


# `churn report`: one self-contained HTML page per scored as-of date.
REPORTS_DIR = "reports"


def report_path(workdir: Path, as_of: dt.date) -> Path:
    """Where `churn report` writes the report of the list scored as of `as_of`."""
    return Path(workdir) / REPORTS_DIR / f"report_{as_of.isoformat()}.html"
