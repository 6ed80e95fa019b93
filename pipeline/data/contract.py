"""Input data contract v1: the tables, their columns, and the rules a data source must satisfy.

The contract is declared once (`churn_pipeline.core.tables.TABLES`) and compiled here to SQL: one aggregate
query per table counts every broken rule, so validating a large source costs one scan per table plus one anti-join per child table, and
one more scan hashing the rows of each child table for exact duplicates.
Each broken rule becomes one problem line naming the table, the column, the rule, how many rows, a few
example values, and how to fix it.

Rules that depend on the run (how far in the future a date may be, which share of exact duplicate rows is
an error) take their settings as a `Limits` value: the reference date is a parameter, never read from the
clock here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.core.tables import ACTIVITY_TABLES, Column, Kind, TableSpec


@dataclass(frozen=True)
class Limits:
    """Settings of the rules that depend on the run (from `DataConfig`, plus the reference date)."""

    reference_date: dt.date  # today, or a later as-of date: no row may be dated after it + max_future_days
    max_future_days: int
    duplicate_rows_error_share: float
    # Only rows of the last N days (to each table's newest ts) are checked for exact duplicates; None = all.
    # Nightly scoring sets its longest feature window: those rows make tonight's list, and hashing the whole
    # history of 120M events cost it ~10 s of its 30 s budget; `churn validate` and training check all rows.
    duplicates_window_days: int | None = None

    @property
    def last_allowed_date(self) -> dt.date:
        return self.reference_date + dt.timedelta(days=self.max_future_days)


_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_TEXT_TYPES = {"VARCHAR"}

ACCEPTED: dict[Kind, str] = {
    "id": "an integer or a string",
    "date": "a date (YYYY-MM-DD)",
    "timestamp": "a timestamp (YYYY-MM-DD HH:MM:SS)",
    "string": "a string",
    "float": "a number",
    "int": "a whole number",
    "bool": "a boolean (true/false)",
}


def _base_type(duck_type: str) -> str:
    t = duck_type.upper()
    if t.startswith("DECIMAL"):
        return "DECIMAL"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    if t.startswith("ENUM"):
        return "VARCHAR"
    return t


ALL_NULL = "NULL"  # raw type given to a column with no value at all: any contract type fits it

_TARGET_TYPE: dict[Kind, str] = {
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "string": "VARCHAR",
    "float": "DOUBLE",
    "int": "BIGINT",
    "bool": "BOOLEAN",
}


def type_ok(kind: Kind, duck_type: str) -> bool:
    t = _base_type(duck_type)
    if t == ALL_NULL:
        return True
    numeric = t in _INTEGER_TYPES | _FLOAT_TYPES | {"DECIMAL"}
    return {
        "id": t in _INTEGER_TYPES | _TEXT_TYPES,
        "date": t in {"DATE", "TIMESTAMP"} | _TEXT_TYPES,
        "timestamp": t in {"DATE", "TIMESTAMP"} | _TEXT_TYPES,
        "string": t in _TEXT_TYPES,
        "float": numeric or t in _TEXT_TYPES,
        "int": numeric or t in _TEXT_TYPES,
        "bool": t in {"BOOLEAN"} | _INTEGER_TYPES | _TEXT_TYPES,
    }[kind]


def q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def target_type(col: Column, id_type: str) -> str:
    """The (DuckDB) type of a contract column once normalised: its kind's type, ids the source's `id_type`."""
    return id_type if col.kind == "id" else _TARGET_TYPE[col.kind]


def normalised_expr(col: Column, raw_type: str, id_type: str) -> str:
    """SQL turning a raw column into its contract type; unparseable values become NULL (and are counted)."""
    c = q(col.name)
    t = _base_type(raw_type)
    target = target_type(col, id_type)
    if t == ALL_NULL:
        return f"CAST(NULL AS {target})"
    if raw_type.upper() == target:
        # Already the contract type: the bare column keeps Parquet filter pushdown (row-group skipping on ts).
        return c
    if t in _INTEGER_TYPES and target == "BIGINT":
        return f"CAST({c} AS BIGINT)"
    if col.kind == "id":
        return f"TRY_CAST({c} AS {id_type})"
    if col.kind == "date":
        if t in _TEXT_TYPES:
            # A date written with a time and an offset is the UTC date of that instant (as a timestamp is).
            return f"COALESCE(CAST(TRY_CAST({c} AS TIMESTAMPTZ) AS DATE), TRY_CAST({c} AS DATE))"
        return f"CAST({c} AS DATE)"
    if col.kind == "timestamp":
        if t in _TEXT_TYPES:
            # Through TIMESTAMPTZ: '+05:30', '+0530' and 'Z' are honoured (a plain TIMESTAMP cast drops them),
            # and text without an offset is read in the session time zone, UTC.
            return f"CAST(TRY_CAST({c} AS TIMESTAMPTZ) AS TIMESTAMP)"
        return f"TRY_CAST({c} AS TIMESTAMP)"
    if col.kind == "string":
        return f"CAST({c} AS VARCHAR)"
    if col.kind == "float":
        return f"TRY_CAST({c} AS DOUBLE)"
    if col.kind == "int":
        # Reject 3.5 rather than let the cast round it: only whole numbers survive. inf/NaN (NaN = NaN in
        # DuckDB) and numbers beyond BIGINT would make the cast itself fail mid-query: they become NULL too.
        as_double = f"TRY_CAST({c} AS DOUBLE)"
        return (
            f"CASE WHEN isfinite({as_double}) AND {as_double} = FLOOR({as_double}) "
            f"THEN TRY_CAST({as_double} AS BIGINT) END"
        )
    if col.kind == "bool":
        return f"TRY_CAST({c} AS BOOLEAN)"
    raise AssertionError(col.kind)


@dataclass
class TableReport:
    """What validation saw of one table (for `churn validate` and run manifests)."""

    name: str
    rows: int
    columns: list[str]
    first: str | None = None  # earliest date/ts in the table
    last: str | None = None


@dataclass
class ValidationReport:
    """Problems fail validation; warnings (e.g. a few duplicate rows) are reported and let it pass."""

    tables: dict[str, TableReport] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_if_failed(self) -> None:
        if self.problems:
            raise DataValidationError(self.problems)


def id_type(con: Any, raw: dict[str, str], schemas: dict[str, dict[str, str]]) -> str:
    """The type of customer ids once normalised: BIGINT when every table's ids are integers (or integer text
    without leading zeros), else VARCHAR."""
    for name, view in raw.items():
        t = schemas[name].get("customer_id")
        if t is None:
            continue
        if t.upper() in {"VARCHAR"} or t.upper().startswith("ENUM"):
            c = q("customer_id")
            bad = con.execute(
                f"SELECT COUNT(*) FROM {view} WHERE {c} IS NOT NULL AND "
                f"(TRY_CAST({c} AS BIGINT) IS NULL OR CAST(TRY_CAST({c} AS BIGINT) AS VARCHAR) <> {c})"
            ).fetchone()[0]
            if bad:
                return "VARCHAR"
        elif "INT" not in t.upper():
            return "VARCHAR"
    return "BIGINT"


def mark_all_null(con: Any, view: str, spec: TableSpec, schema: dict[str, str]) -> dict[str, str]:
    """`schema` (column -> type) with ALL_NULL for each contract column that is mistyped and holds no value.

    An all-null column has no real type (pandas/Parquet give it INTEGER or NULL): a young company with no
    churned customer yet must not be told its `churn_date` has the wrong type.
    """
    for col in spec.columns:
        t = schema.get(col.name)
        mistyped = t is not None and (t.upper() in {"NULL", '"NULL"'} or not type_ok(col.kind, t))
        # Only a mistyped column costs a scan to see whether it holds any value at all.
        if mistyped and con.execute(f"SELECT COUNT({q(col.name)}) = 0 FROM {view}").fetchone()[0]:
            schema[col.name] = ALL_NULL
    return schema


def schema_problems(spec: TableSpec, raw_schema: dict[str, str]) -> list[str]:
    """Missing required columns and columns whose type can never satisfy the contract."""
    problems = []
    for col in spec.columns:
        if col.name not in raw_schema:
            if col.required:
                have = ", ".join(raw_schema) or "none"
                problems.append(
                    f"{spec.name}.{col.name}: required column is missing (columns present: {have}); "
                    f"add it to the {spec.name} extract or rename the column that holds it"
                )
            continue
        if not type_ok(col.kind, raw_schema[col.name]):
            problems.append(
                f"{spec.name}.{col.name}: wrong type {raw_schema[col.name]}, expected {ACCEPTED[col.kind]}; "
                f"cast the column in the extract"
            )
    return problems


def fmt_values(values: list[Any]) -> str:
    """Example values for a message: strings quoted, everything else as printed."""
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)


def _examples(con: duckdb.DuckDBPyConnection, view: str, column: str, where: str) -> str:
    # The smallest: the same examples on every run and engine (only failing rows are sorted)
    rows = con.execute(
        f"SELECT DISTINCT {q(column)} FROM {view} WHERE {where} ORDER BY {q(column)} LIMIT 3"
    ).fetchall()
    return fmt_values([r[0] for r in rows])


@dataclass(frozen=True)
class ExtraColumn:
    """A column outside the contract, typed as the source gives it; a CSV column is cast to the type DuckDB's
    CSV sniffer infers, so the same data as CSV or Parquet gives the same types."""

    name: str
    sql: str  # expression over the raw column
    type: str  # DuckDB type of `sql`
    # `sql` can turn a value into NULL (a CSV value that does not fit the sniffed type): counted as an error.
    cast: bool = False


_NUMBER_FIX = "write a missing value as empty/null and correct the infinite ones"


@dataclass(frozen=True)
class _Check:
    """One row-level rule: the column, the rule in words, the fix, the SQL condition that marks a bad row, and
    optionally a cheaper aggregate counting those rows than `COUNT(*) FILTER (WHERE where)`."""

    column: str
    rule: str
    fix: str
    where: str
    count: str | None = None
    # Counted in a query of its own: a FILTER in the table's main aggregate would make that aggregate scan
    # every column it names, where on Parquet it is otherwise answered from statistics alone.
    alone: bool = False

    @property
    def count_sql(self) -> str:
        return self.count or f"COUNT(*) FILTER (WHERE {self.where})"


def _rule_checks(
    spec: TableSpec, raw_schema: dict[str, str], id_type: str, extras: tuple[ExtraColumn, ...] = ()
) -> list[_Check]:
    """Every row-level rule that applies to the table's present columns."""
    checks = []
    present = [c for c in spec.columns if c.name in raw_schema]
    for col in present:
        raw = q(col.name)
        norm = normalised_expr(col, raw_schema[col.name], id_type)
        if not col.nullable:
            # COUNT(*) - COUNT(col): DuckDB answers it from Parquet (or its own) column statistics without
            # reading the column; a FILTER always scans
            checks.append(
                _Check(
                    col.name,
                    "is null",
                    f"fill every {col.name} or drop those rows",
                    f"{raw} IS NULL",
                    f"COUNT(*) - COUNT({raw})",
                )
            )
        if col.kind in {"date", "timestamp", "float", "int", "bool"} and norm != raw:  # a cast can fail
            rule = {
                "date": "is not a parseable date",
                "timestamp": "is not a parseable timestamp",
                "float": "is not a number",
                "int": "is not a whole number",
                "bool": "is not a boolean",
            }[col.kind]
            checks.append(
                _Check(
                    col.name,
                    rule,
                    f"write it as {ACCEPTED[col.kind]}",
                    f"{raw} IS NOT NULL AND {norm} IS NULL",
                )
            )
        if col.kind == "float":
            # inf/-inf (and NaN, which a Parquet writer may keep apart from null) pass every cast; the
            # feature ratios and sums would carry them to an error far from the input.
            # A stored number (not CSV text) is checked alone: reading one column of 13.4M events took 0.19 s,
            # the main aggregate with this FILTER 0.6 s instead of 0.00 s (statistics).
            typed = norm == raw
            checks.append(
                _Check(
                    col.name,
                    "is not a finite number (inf or NaN)",
                    _NUMBER_FIX,
                    f"NOT isfinite({norm})",
                    alone=typed,
                )
            )
        if col.min is not None or col.max is not None:
            lo = "-infinity" if col.min is None else col.min
            hi = "infinity" if col.max is None else col.max
            bounds = []
            if col.min is not None:
                bounds.append(f"{norm} < {col.min}")
            if col.max is not None:
                bounds.append(f"{norm} > {col.max}")
            checks.append(
                _Check(
                    col.name,
                    f"is outside [{lo}, {hi}]",
                    "correct or null the out-of-range values",
                    " OR ".join(bounds),
                )
            )
        if col.allowed is not None:
            allowed = ", ".join(f"'{a}'" for a in col.allowed)
            checks.append(
                _Check(
                    col.name,
                    f"is not one of {allowed}",
                    f"map the values to {allowed}",
                    f"{norm} NOT IN ({allowed})",
                )
            )
    for later, earlier in spec.ordered:
        if later in raw_schema and earlier in raw_schema:
            nl = normalised_expr(spec.column(later), raw_schema[later], id_type)
            ne = normalised_expr(spec.column(earlier), raw_schema[earlier], id_type)
            checks.append(
                _Check(later, f"is before {earlier}", f"fix the {later} of those rows", f"{nl} < {ne}")
            )
    for extra in extras:
        raw = q(extra.name)
        if extra.cast:
            checks.append(
                _Check(
                    extra.name,
                    f"does not read as {extra.type} like the rest of the column",
                    "correct those values, or give the table as Parquet with the column's type",
                    f"{raw} IS NOT NULL AND {extra.sql} IS NULL",
                )
            )
        # Extra numbers of customers are attribute features: inf would fail deep inside feature building.
        if spec.name == "customers" and _base_type(extra.type) in _FLOAT_TYPES:
            checks.append(
                _Check(
                    extra.name,
                    "is not a finite number (inf or NaN)",
                    _NUMBER_FIX,
                    f"NOT isfinite({extra.sql})",
                )
            )
    return checks


def check_table(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    view: str,
    raw_schema: dict[str, str],
    id_type: str,
    limits: Limits,
    extras: tuple[ExtraColumn, ...] = (),
) -> tuple[list[str], list[str], TableReport]:
    """Run every row-level rule of one table in one aggregate query; return problems, warnings and a summary.

    Dates in the future are gated by the column's maximum (from Parquet statistics, free) and only counted,
    with examples, when the maximum is too late. Exact duplicate rows cost a scan of their own (below).
    """
    all_checks = _rule_checks(spec, raw_schema, id_type, extras)
    checks = [c for c in all_checks if not c.alone]
    alone = [c for c in all_checks if c.alone]
    ts_col = next((c for c in ("ts", "signup_date") if c in raw_schema), None)
    aggs = ["COUNT(*)"] + [c.count_sql for c in checks]
    future = _future_checks(spec, raw_schema, id_type, limits)
    # MAX answers from Parquet statistics: the future-date gate costs nothing on the happy path.
    aggs += [gate for gate, _ in future]
    if ts_col:
        norm_ts = normalised_expr(spec.column(ts_col), raw_schema[ts_col], id_type)
        aggs += [
            f"CAST(CAST(MIN({norm_ts}) AS DATE) AS VARCHAR)",
            f"CAST(CAST(MAX({norm_ts}) AS DATE) AS VARCHAR)",
        ]
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {view}").fetchone()
    n_rows = row[0]
    counts = list(row[1 : 1 + len(checks)])
    gates = row[1 + len(checks) : 1 + len(checks) + len(future)]
    report = TableReport(spec.name, n_rows, list(raw_schema))
    if ts_col:
        report.first, report.last = row[-2], row[-1]
    if alone:
        checks += alone
        counts += con.execute(f"SELECT {', '.join(c.count_sql for c in alone)} FROM {view}").fetchone()
    for (_, check), beyond in zip(future, gates, strict=True):
        if beyond:
            checks.append(check)
            counts.append(con.execute(f"SELECT {check.count_sql} FROM {view}").fetchone()[0])
    problems, warnings = [], []
    for c, count in zip(checks, counts, strict=True):
        if count:
            ex = _examples(con, view, c.column, c.where)
            problems.append(
                f"{spec.name}.{c.column}: {count:,} of {n_rows:,} rows {c.rule} (e.g. {ex}); {c.fix}"
            )
    if spec.name in ACTIVITY_TABLES and n_rows:
        window = None
        ts = normalised_expr(spec.column("ts"), raw_schema["ts"], id_type) if "ts" in raw_schema else None
        if limits.duplicates_window_days is not None and ts is not None:
            days = int(limits.duplicates_window_days)
            window = (
                f"{ts} > (SELECT MAX({ts}) FROM {view}) - INTERVAL {days} DAY",
                f"the last {days} days'",
            )
        message, is_error = _duplicate_rows(con, spec, view, list(raw_schema), n_rows, limits, window, ts)
        if message:
            (problems if is_error else warnings).append(message)
    if spec.name == "customers" and "customer_id" in raw_schema:
        norm_id = normalised_expr(spec.column("customer_id"), raw_schema["customer_id"], id_type)
        dup = con.execute(
            f"SELECT COUNT(*), SUM(n), LIST(id ORDER BY id)[1:3] FROM "
            f"(SELECT {norm_id} AS id, COUNT(*) AS n FROM {view} WHERE {norm_id} IS NOT NULL "
            f"GROUP BY 1 HAVING COUNT(*) > 1)"
        ).fetchone()
        if dup[0]:
            problems.append(
                f"customers.customer_id: {dup[0]:,} ids appear more than once ({int(dup[1]):,} rows, e.g. "
                f"{', '.join(map(repr, dup[2]))}); keep one row per customer"
            )
    return problems, warnings, report


def _future_checks(
    spec: TableSpec, raw_schema: dict[str, str], id_type: str, limits: Limits
) -> list[tuple[str, _Check]]:
    """(gate aggregate, check) per date/timestamp column: no row may be dated after the last
    allowed date (the reference date + max_future_days; a timestamp anywhere on that day is fine)."""
    last = limits.last_allowed_date
    out = []
    for col in spec.columns:
        if col.kind not in {"date", "timestamp"} or col.name not in raw_schema:
            continue
        norm = normalised_expr(col, raw_schema[col.name], id_type)
        if col.kind == "date":
            bound = f"DATE '{last.isoformat()}'"
        else:
            bound = f"TIMESTAMP '{(last + dt.timedelta(days=1)).isoformat()}'"
        op = ">" if col.kind == "date" else ">="
        check = _Check(
            col.name,
            f"is dated after {last} (reference date {limits.reference_date} + data.max_future_days "
            f"{limits.max_future_days})",
            "data cannot come from the future: correct those dates (a wrong year or time zone?) or drop the "
            "rows; if the data is a replayed or simulated period, pass --as-of with its date",
            f"{norm} {op} {bound}",
        )
        out.append((f"MAX({norm}) {op} {bound}", check))
    return out


# Up to this many repeated row hashes are confirmed row by row (a 64-bit hash can collide); beyond, the count
# is far above any collision (expected colliding pairs at 120M rows: n^2 / 2^65 ~ 4e-4) and is taken as is.
_CONFIRMED_HASHES = 10_000


def _duplicate_rows(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    view: str,
    columns: list[str],
    n_rows: int,
    limits: Limits,
    window: tuple[str, str] | None = None,
    ts: str | None = None,
) -> tuple[str | None, bool]:
    """The message about rows that repeat another row in every column (None if none), and whether it is an
    error (their share above `limits.duplicate_rows_error_share`) or a warning. `window` (an SQL condition and
    its words) limits the check to some rows; the share is then of those rows.

    `ts` (the table's normalised timestamp) matters when the timestamps carry no time of day (a log kept by
    date): there two identical purchases by one customer on one day are two real rows that no column tells
    apart. Above the share, such a table fails only when the repeats come as whole days loaded twice (every
    distinct row of the day repeated: a batch or file loaded again, `_whole_day_repeats`) above the share;
    repeats scattered over days are kept with a warning.

    One scan hashes every row (DuckDB); sorting the 64-bit hashes (numpy) puts repeats side by side; only when
    there are some, a second scan confirms them (and finds examples) among the rows with those hashes. On a
    database (`data.warehouse`) the server groups the row hashes instead: only repeated ones come back.
    Measured on a simulated 200k-customer company (13.4M events, 2.8M payments; 11 events are real repeats)
    on the shared 2-core machine: validation 0.6-1.1 s before this check, 2.3-3.4 s with it (events: fetching
    the hashes 0.7 s, sorting 0.2 s, confirming 0.3-0.5 s). Side by side on the events, fetching and sorting
    took 0.7-1.0 s where DuckDB's hash aggregate over the hashes took 3.6-6.0 s and GROUP BY all columns
    4.6-6.5 s; an approximate distinct count (HyperLogLog, 0.2-1% off there) cannot tell 11 repeats from
    none, or a 0.9% share from 1.1%. Memory: 8 bytes a row while it runs (~1 GB at 120M events).
    """
    r, n = q("__row"), q("__n")
    where, scope = (f" AND {window[0]}", f"{window[1]} ") if window else ("", "")
    repeats, n_rows = _repeated_hashes(con, view, where)
    if not len(repeats):
        return None, False
    extra = len(repeats)
    limit = limits.duplicate_rows_error_share
    if window is not None and extra / n_rows <= limit:
        # Nightly scoring, below the share: the hashes' count stands (a false repeat among 15M rows has odds of
        # ~1e-5) and the second scan, which only finds examples, is skipped: 2.5 s of 120M events at 1M customers
        return (
            f"{spec.name} (all columns equal: {', '.join(columns)}): {extra:,} of {scope}{n_rows:,} rows "
            f"({extra / n_rows:.2%}) repeat another row exactly (counted by row hash; `churn validate` names "
            f"examples); kept (at most data.duplicate_rows_error_share, {limit:.2%})",
            False,
        )
    repeated = np.unique(repeats)
    groups = len(repeated)
    keys = [c for c in ("customer_id", "ts") if c in columns]
    example = " || ', ' || ".join(f"'{c} ' || COALESCE(CAST({q(c)} AS VARCHAR), 'null')" for c in keys)
    shown = repeated if groups <= _CONFIRMED_HASHES else repeated[:3]
    confirmed_groups, confirmed_extra, sample = con.execute(
        f"SELECT COUNT(*), SUM({n} - 1), LIST({example} ORDER BY {', '.join(map(q, keys))})[1:3] FROM "
        f"(SELECT *, COUNT(*) AS {n} FROM {view} AS {r} WHERE hash({r}) IN (SELECT UNNEST(CAST(? AS UBIGINT[])))"
        f"{where} GROUP BY {', '.join(map(q, columns))} HAVING COUNT(*) > 1)",
        [shown.tolist()],
    ).fetchone()
    if groups <= _CONFIRMED_HASHES:
        extra = confirmed_extra or 0
        if not confirmed_groups:  # only hash collisions: no real repeat
            return None, False
    share = extra / n_rows
    what = (
        f"{spec.name} (all columns equal: {', '.join(columns)}): {int(extra):,} of {scope}{n_rows:,} rows "
        f"({share:.2%}) repeat another row exactly (e.g. {'; '.join(sample or [])})"
    )
    if share > limit:
        reloaded = _whole_day_repeats(con, view, columns, ts, where) if ts is not None else None
        if reloaded is not None and reloaded / n_rows <= limit:
            return (
                f"{what}; its timestamps carry no time of day, so identical same-day rows may be real (two equal "
                f"purchases on one day), and they are scattered over days, not whole days loaded twice "
                f"({reloaded:,} rows in days repeated whole): kept (whole days repeated above "
                f"data.duplicate_rows_error_share, {limit:.2%}, fail); drop them if they are records loaded twice",
                False,
            )
        return (
            f"{what}; above data.duplicate_rows_error_share ({limit:.2%}): drop the repeated rows (was part of "
            f"the extract loaded twice?), or add the column that tells them apart",
            True,
        )
    return (
        f"{what}; kept (at most data.duplicate_rows_error_share, {limit:.2%}): drop them if they are one "
        f"record loaded twice",
        False,
    )


def _whole_day_repeats(con: Any, view: str, columns: list[str], ts: str, where: str) -> int | None:
    """None when some timestamp of the table has a time of day; else the extra rows of the days whose every
    distinct row appears more than once (a day loaded twice), summed over those days."""
    r = q("__row")
    timed = con.execute(
        f"SELECT COUNT(*) FROM {view} AS {r} WHERE {ts} <> CAST(CAST({ts} AS DATE) AS TIMESTAMP){where}"
    ).fetchone()[0]
    if timed:
        return None
    cols = ", ".join(map(q, columns))
    n, d, rows, distinct, least = q("__n"), q("__d"), q("__rows"), q("__distinct"), q("__least")
    extra = con.execute(
        f"SELECT COALESCE(SUM({rows} - {distinct}), 0) FROM ("
        f"SELECT {d}, SUM({n}) AS {rows}, COUNT(*) AS {distinct}, MIN({n}) AS {least} FROM ("
        f"SELECT CAST({ts} AS DATE) AS {d}, {n} FROM ("
        f"SELECT {cols}, COUNT(*) AS {n} FROM {view} AS {r} WHERE TRUE{where} GROUP BY {cols}"
        f") AS {q('__g')}) AS {q('__days')} GROUP BY {d}) AS {q('__per_day')} WHERE {least} > 1"
    ).fetchone()[0]
    return int(extra or 0)


def _is_duckdb(con: Any) -> bool:
    """Whether `con` is DuckDB itself; else it runs this module's SQL on a database (`data.warehouse`)."""
    return isinstance(con, duckdb.DuckDBPyConnection)


def _repeated_hashes(con: Any, view: str, where: str) -> tuple[np.ndarray, int]:
    """The row hashes that repeat an earlier row's (one entry per extra row), and the rows hashed."""
    r = q("__row")
    if _is_duckdb(con):
        hashes = con.execute(f"SELECT hash({r}) AS h FROM {view} AS {r} WHERE TRUE{where}").fetchnumpy()["h"]
        hashes.sort()
        return hashes[1:][hashes[1:] == hashes[:-1]], len(hashes)
    # A database groups the hashes itself: only repeated ones come over the network, not one per row.
    h, n = q("__h"), q("__n")
    rows = con.execute(
        f"SELECT {h}, COUNT(*) - 1 AS {n} FROM (SELECT hash({r}) AS {h} FROM {view} AS {r} WHERE TRUE{where}) "
        f"AS {q('__hashes')} GROUP BY {h} HAVING COUNT(*) > 1"
    ).fetchall()
    n_rows = con.execute(f"SELECT COUNT(*) FROM {view} AS {r} WHERE TRUE{where}").fetchone()[0]
    hashes = np.array([row[0] for row in rows], dtype=np.int64)
    return np.repeat(hashes, [int(row[1]) for row in rows]), int(n_rows)


def empty_problem(spec: TableSpec) -> str:
    fix = "provide rows" if spec.required else "provide rows, or remove the table if the company has none"
    return f"{spec.name}: table is empty; {fix}"


# From this many rows per customer on, finding the child's distinct ids first is cheaper than probing every row
# against customers (events at ~67 rows per customer: 0.37 s instead of 0.72 s; payments at ~14: 0.35 s vs 0.30 s).
DISTINCT_FIRST_ROWS_PER_CUSTOMER = 20


def orphan_problem(
    con: duckdb.DuckDBPyConnection, table: str, view: str, customers_view: str, rows_per_customer: float = 0.0
) -> str | None:
    """Rows of a child table whose customer_id is not in customers."""
    if rows_per_customer >= DISTINCT_FIRST_ROWS_PER_CUSTOMER:
        # Exact: no orphan id means no orphan row; counting the rows is left to the rare failing case below.
        any_orphan = con.execute(
            f"SELECT EXISTS (SELECT 1 FROM (SELECT DISTINCT customer_id FROM {view} WHERE customer_id IS NOT NULL) "
            f"ANTI JOIN {customers_view} USING (customer_id))"
        ).fetchone()[0]
        if not any_orphan:
            return None
    n, examples = con.execute(
        f"SELECT COUNT(*), LIST(DISTINCT customer_id ORDER BY customer_id)[1:3] FROM "
        f"(SELECT customer_id FROM {view} ANTI JOIN {customers_view} USING (customer_id) "
        f"WHERE customer_id IS NOT NULL)"
    ).fetchone()
    if not n:
        return None
    return (
        f"{table}.customer_id: {n:,} rows refer to customers not in customers "
        f"(e.g. {fmt_values(examples or [])}); add those customers or drop the rows"
    )
