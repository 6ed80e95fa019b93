"""The input tables every feature and label builder takes."""

from __future__ import annotations

from dataclasses import dataclass

import ibis.expr.types as ir


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

    def present(self) -> list[str]:
        """Names of the tables this source has."""
        return [n for n in TABLE_NAMES if getattr(self, n) is not None]


TABLE_NAMES = ("customers", "events", "support_contacts", "surveys", "payments")
