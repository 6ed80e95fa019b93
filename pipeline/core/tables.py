"""The one list of input tables and their columns (the data contract v1, declared once), and the ibis view of them
that every feature and label builder takes. The contract's checks (`churn_pipeline.data.contract`) compile
these declarations to SQL; the simulator writes these tables; the IO layer reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import ibis.expr.types as ir

Kind = Literal["id", "date", "timestamp", "string", "float", "int", "bool"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True  # the column must exist
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    required: bool = False
    # (later column, earlier column): the later one must not be before the earlier one.
    ordered: tuple[tuple[str, str], ...] = ()

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


# The timestamped activity tables (all but customers): an exact repeat of a row is a repeated record
# (customers has its unique-id rule instead), and their newest row tells how fresh the data is.
ACTIVITY_TABLES = ("events", "support_contacts", "surveys", "payments")

_ID = Column("customer_id", "id")
_TS = Column("ts", "timestamp")

TABLES: dict[str, TableSpec] = {
    "customers": TableSpec(
        "customers",
        (_ID, Column("signup_date", "date"), Column("churn_date", "date", nullable=True)),
        required=True,
        ordered=(("churn_date", "signup_date"),),
    ),
    "events": TableSpec(
        "events",
        (_ID, _TS, Column("event_type", "string"), Column("amount", "float", required=False, nullable=True)),
    ),
    "support_contacts": TableSpec(
        "support_contacts",
        (
            _ID,
            _TS,
            Column("channel", "string"),
            Column("is_complaint", "bool"),
            Column("response_minutes", "float", required=False, nullable=True, min=0),
            Column("resolved_ts", "timestamp", required=False, nullable=True),
            Column("csat", "int", required=False, nullable=True, min=1, max=5),
        ),
        ordered=(("resolved_ts", "ts"),),
    ),
    "surveys": TableSpec("surveys", (_ID, _TS, Column("nps", "int", min=0, max=10))),
    "payments": TableSpec(
        "payments",
        (_ID, _TS, Column("amount", "float"), Column("status", "string", allowed=("paid", "failed"))),
    ),
    # Retention campaigns as run by the CRM: who was contacted (or held out as control), when, with what.
    # Never a feature input: `churn campaign-report` measures the campaigns, the uplift model learns from them.
    "campaigns": TableSpec(
        "campaigns",
        (
            _ID,
            _TS,
            Column("campaign_id", "string"),
            Column("group", "string", allowed=("treatment", "control")),
            Column("offer", "string", required=False, nullable=True),
            Column("responded", "bool", required=False, nullable=True),
            Column("risk_tier", "string", required=False, nullable=True),
        ),
    ),
}

TABLE_NAMES = tuple(TABLES)


@dataclass(frozen=True)
class SourceTables:
    """Contract-conformant input tables as ibis expressions (DuckDB by default, any ibis backend works).

    Types are normalised by the IO layer before builders see them: `customer_id` has one type across all
    tables (int64 when every table's ids are integers, else string), `signup_date`/`churn_date` are dates,
    every `ts`/`resolved_ts` is a timestamp (UTC, without zone), `is_complaint` is boolean. Optional tables are `None` when the
    source does not have them, and optional columns are absent when the source lacks them.
    """

    customers: ir.Table
    events: ir.Table | None = None
    support_contacts: ir.Table | None = None
    surveys: ir.Table | None = None
    payments: ir.Table | None = None
    campaigns: ir.Table | None = None

    def present(self) -> list[str]:
        """Names of the tables this source has."""
        return [n for n in TABLE_NAMES if getattr(self, n) is not None]
