"""Reading data sources into contract-typed ibis tables, and writing outputs atomically.

A data source is a folder of `<table>.parquet` / `<table>.csv` files (or `<table>/` folders of Parquet
parts), or a DuckDB database file holding tables of those names. Tables are exposed as lazy DuckDB views:
nothing is copied into memory; the contract casts are part of the view, and validation is a handful of
aggregate queries over them.

One typing for every format: contract columns are cast to their contract types (a value that does not fit
is counted and named by validation, not a read error), other columns keep the type the source gives them;
a CSV gives none, so its other columns take the type DuckDB's CSV sniffer infers (numbers, booleans,
dates), and the same data as CSV or Parquet makes the same tables. Timestamps are UTC: an offset in a CSV
value is applied, a value without one is UTC already.

A PostgreSQL URL (`data.source: postgresql://...`) is read in place: `churn_pipeline.data.warehouse` runs the same
normalising SELECTs and contract checks on the server, and the tables are ibis expressions there.

With `data.engine: spark` a local folder is opened (and validated) the same way, then its tables are handed
to Spark with the same types (`churn_pipeline.data.spark`): Spark reads the Parquet files itself. A folder URL
(s3a://, abfss://, gs://, hdfs://, dbfs:/, file:///...) or a metastore schema (`metastore:<catalog>.<schema>`)
is Spark's alone: `spark.SparkBackend` runs the same normalising SELECTs and contract checks on Spark.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import SecretStr, ValidationError

from churn_pipeline.core.config import DataConfig, redact, source_kind
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.tables import TABLE_NAMES, TABLES, SourceTables, TableSpec
from churn_pipeline.data import spark, warehouse
from churn_pipeline.data.contract import (
    ExtraColumn,
    Limits,
    ValidationReport,
    check_table,
    empty_problem,
    id_type,
    mark_all_null,
    normalised_expr,
    orphan_problem,
    q,
    schema_problems,
    target_type,
)

log = logging.getLogger(__name__)

DUCKDB_SUFFIXES = {".duckdb", ".ddb", ".db"}
_HEAD_TAIL_BYTES = 1 << 20


@dataclass
class Source:
    """An opened, normalised (and normally validated) data source."""

    path: Path | None
    con: Any  # ibis backend: DuckDB, PySpark with engine "spark", PostgreSQL with engine "postgres"
    tables: SourceTables
    data_end_date: dt.date
    fingerprint: str
    report: ValidationReport
    engine: Literal["duckdb", "spark", "postgres"] = "duckdb"
    location: str | None = None  # a database source's URL, its password redacted (safe to print)

    @property
    def label(self) -> str | None:
        """Where the data came from, safe to print: the path or the redacted URL (None for in-memory frames)."""
        return self.location or (str(self.path) if self.path is not None else None)

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """The raw DuckDB connection behind the ibis backend (DuckDB sources only)."""
        if self.engine != "duckdb":
            raise TypeError(f"this source's tables are on {self.engine}, not DuckDB")
        return self.con.con


def _sql_str(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class _Found:
    """The tables of a source folder: SQL reading each, the CSV files and the Parquet file or folder
    among them, and every file read (for the fingerprint)."""

    readers: dict[str, str]
    csv_files: dict[str, Path]
    parquet: dict[str, Path]
    files: list[Path]


def _discover_folder(folder: Path) -> _Found:
    """Find the tables of a source folder (`<table>.parquet`, `<table>.csv` or a `<table>/` of Parquet parts)."""
    readers: dict[str, str] = {}
    csv_files: dict[str, Path] = {}
    parquet: dict[str, Path] = {}
    files: list[Path] = []
    for name in TABLE_NAMES:
        candidates = {
            "parquet": folder / f"{name}.parquet",
            "csv": folder / f"{name}.csv",
            "parts": folder / name,
        }
        found = {k: p for k, p in candidates.items() if p.exists()}
        if len(found) > 1:
            listed = ", ".join(p.name for p in found.values())
            raise ConfigError(
                f"data source {folder}: table {name} is given more than once ({listed}); keep one"
            )
        if not found:
            continue
        kind, p = next(iter(found.items()))
        if kind == "parquet":
            readers[name] = f"read_parquet({_sql_str(p)})"
            parquet[name] = p
            files.append(p)
        elif kind == "csv":
            # All text: the contract (and `_sniffed_columns` for the other columns) does the typing, so a bad
            # value is counted and named, not a read error.
            readers[name] = f"read_csv({_sql_str(p)}, header = true, all_varchar = true)"
            csv_files[name] = p
            files.append(p)
        else:
            parts = sorted(p.rglob("*.parquet"))
            if not parts:
                raise ConfigError(f"data source {folder}: folder {p} holds no .parquet files")
            readers[name] = f"read_parquet({_sql_str(p / '**' / '*.parquet')}, union_by_name = true)"
            parquet[name] = p
            files.extend(parts)
    return _Found(readers, csv_files, parquet, files)


def _sniffed_columns(duck: duckdb.DuckDBPyConnection, path: Path) -> dict[str, tuple[str, str]]:
    """Column -> (SQL casting its text to the type DuckDB's CSV sniffer infers for it, that type); VARCHAR
    columns are left out.

    The sniffer reads a sample; a later value that does not fit becomes NULL in the cast and is counted by
    validation (`ExtraColumn.cast`), where reading with the sniffed types would fail the whole query.
    """
    try:
        columns, date_format, ts_format = duck.execute(
            f"SELECT Columns, DateFormat, TimestampFormat FROM sniff_csv({_sql_str(path)}, header = true)"
        ).fetchone()
    except duckdb.Error as e:
        raise ConfigError(
            f"cannot read {path} as CSV ({e}); check its delimiter, quoting and encoding"
        ) from e
    casts: dict[str, tuple[str, str]] = {}
    for col in columns:
        name, typ = col["name"], col["type"].upper()
        c = q(name)
        if typ == "VARCHAR":
            continue
        if typ == "DATE" and date_format:
            casts[name] = (f"CAST(TRY_STRPTIME({c}, {_sql_str(date_format)}) AS DATE)", "DATE")
        elif typ.startswith("TIMESTAMP") and ts_format:
            casts[name] = (f"CAST(TRY_STRPTIME({c}, {_sql_str(ts_format)}) AS TIMESTAMP)", "TIMESTAMP")
        elif typ.startswith("TIMESTAMP"):
            # As contract timestamps: offsets applied, naive values UTC, no time zone kept.
            casts[name] = (f"CAST(TRY_CAST({c} AS TIMESTAMPTZ) AS TIMESTAMP)", "TIMESTAMP")
        else:
            casts[name] = (f"TRY_CAST({c} AS {typ})", typ)
    return casts


def _extra_columns(
    spec: TableSpec, raw_schema: dict[str, str], sniffed: dict[str, tuple[str, str]]
) -> tuple[ExtraColumn, ...]:
    """The table's columns outside the contract, typed: CSV ones as sniffed, zoned timestamps as UTC."""
    contract = {c.name for c in spec.columns}
    extras = []
    for name, raw_type in raw_schema.items():
        if name in contract:
            continue
        if name in sniffed:
            sql, typ = sniffed[name]
            extras.append(ExtraColumn(name, sql, typ, cast=True))
        elif raw_type.upper() == "TIMESTAMP WITH TIME ZONE":
            extras.append(ExtraColumn(name, f"CAST({q(name)} AS TIMESTAMP)", "TIMESTAMP"))
        else:
            extras.append(ExtraColumn(name, q(name), raw_type))
    return tuple(extras)


def _file_digest(paths: list[Path], root: Path) -> str:
    """Fingerprint of files: name, size, and the first and last MiB (Parquet footers hold row-group stats)."""
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(paths):
        size = p.stat().st_size
        h.update(f"{p.relative_to(root)}:{size}".encode())
        with p.open("rb") as f:
            h.update(f.read(_HEAD_TAIL_BYTES))
            if size > 2 * _HEAD_TAIL_BYTES:
                f.seek(-_HEAD_TAIL_BYTES, os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()


def _connect() -> Any:
    con = ibis.duckdb.connect()
    con.con.execute("SET TimeZone = 'UTC'")
    # Our own progress bars (rich) cover long stages; DuckDB's would draw over them.
    con.con.execute("SET enable_progress_bar = false")
    return con


def utc_today() -> dt.date:
    """Today's date in UTC, the time zone of the data: the default reference date of validation."""
    return dt.datetime.now(dt.UTC).date()


def contract_limits(
    cfg: DataConfig, today: dt.date, as_of: dt.date | None = None, duplicates_window_days: int | None = None
) -> Limits:
    """The run-dependent rule settings. The reference date is `today`, or a later `as_of` (a replayed or
    simulated period); an earlier as-of does not lower it: data after a past as-of is normal when rescoring."""
    reference = max(today, as_of) if as_of is not None else today
    return Limits(reference, cfg.max_future_days, cfg.duplicate_rows_error_share, duplicates_window_days)


def open_source(
    path: Path | str | SecretStr,
    *,
    validate: bool = True,
    cfg: DataConfig | None = None,
    today: dt.date | None = None,
    as_of: dt.date | None = None,
    duplicates_window_days: int | None = None,
) -> Source:
    """Open a data source (a folder, a DuckDB file, or as a str or SecretStr, e.g. `cfg.source`, a PostgreSQL
    URL, or with the spark engine a folder URL or `metastore:` schema); with `validate`, contract violations
    raise DataValidationError.

    `cfg` holds the rule settings and the engine (default: the defaults), `today` the date no data may be later
    than (beyond `cfg.max_future_days`; default: `utc_today()`), `as_of` the run's as-of date, when it is later;
    `duplicates_window_days` limits the exact-duplicate check to each table's last N days (default: all rows).
    """
    cfg = cfg or DataConfig()
    limits = contract_limits(cfg, today or utc_today(), as_of, duplicates_window_days)
    url = _source_url(path)
    if url is not None and source_kind(url) == "database":
        return _open_database(url, cfg, validate, limits)
    if url is not None:
        return _open_on_spark(url, cfg, validate, limits)
    path = Path(path)
    con = _connect()
    raw: dict[str, str] = {}
    sniffed: dict[str, dict[str, tuple[str, str]]] = {}
    found: _Found | None = None
    if path.is_dir():
        found = _discover_folder(path)
        if cfg.engine == "spark" and found.csv_files:
            raise ConfigError(
                f"data source {path}: {', '.join(p.name for p in found.csv_files.values())} is CSV, and the "
                f"spark engine reads Parquet only; convert it to Parquet or set data.engine: duckdb"
            )
        for name, reader in found.readers.items():
            con.con.execute(f"CREATE VIEW {q('raw_' + name)} AS SELECT * FROM {reader}")
            raw[name] = "raw_" + name
        sniffed = {name: _sniffed_columns(con.con, p) for name, p in found.csv_files.items()}
        fingerprint = _file_digest(found.files, path)
    elif cfg.engine == "spark" and path.exists():
        raise ConfigError(
            f"data source {path}: the spark engine reads a folder of Parquet files (<table>.parquet or "
            f"<table>/ folders of parts); point data.source at one or set data.engine: duckdb"
        )
    elif path.is_file() and path.suffix.lower() in DUCKDB_SUFFIXES:
        con.con.execute(f"ATTACH {_sql_str(path)} AS src (READ_ONLY)")
        present = {
            r[0]
            for r in con.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'src'"
            ).fetchall()
        }
        for name in TABLE_NAMES:
            if name in present:
                raw[name] = f"src.main.{q(name)}"
        st = path.stat()
        fingerprint = hashlib.blake2b(
            f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode(), digest_size=16
        ).hexdigest()
    elif path.exists():
        raise ConfigError(
            f"data source {path} is neither a folder nor a DuckDB file ({', '.join(sorted(DUCKDB_SUFFIXES))}); "
            f"set data.source or --data to a folder of <table>.parquet/.csv files or a DuckDB file"
        )
    else:
        raise ConfigError(
            f"data source {path} does not exist; set data.source or --data "
            f"(run `churn simulate` to make a demo company)"
        )
    if "customers" not in raw:
        raise ConfigError(
            f"data source {path} has no customers table (expected customers.parquet, customers.csv, "
            f"a customers/ folder of Parquet parts, or a DuckDB table named customers)"
        )
    source = _normalise(con, raw, path, fingerprint, validate, limits, sniffed)
    return _on_spark(source, found.parquet if found else None) if cfg.engine == "spark" else source


def _source_url(source: Path | str | SecretStr) -> str | None:
    """The URL when `source` is one (a SecretStr, or a str with a scheme: a database, a folder URL or a
    metastore schema), else None."""
    if isinstance(source, Path):
        return None
    try:
        return DataConfig.model_validate({"source": source}).source_url
    except ValidationError as e:
        raise ConfigError(f"data source: {e.errors()[0]['msg']}") from None


def _open_database(url: str, cfg: DataConfig, validate: bool, limits: Limits) -> Source:
    """A PostgreSQL source: tables read in place, the contract checked and the features run on the server."""
    label = redact(url)
    if cfg.engine == "spark":
        raise ConfigError(
            f"data source {label}: the spark engine reads Parquet files, not a database; set data.engine: duckdb "
            f"(a database source runs on the database itself)"
        )
    backend = warehouse.PostgresBackend(warehouse.connect(url, label), label, cfg.db_schema)
    no_customers = (
        f"data source {label} has no customers table in schema {backend.schema!r} (tables are read from "
        f"{', '.join(TABLE_NAMES)}); set data.db_schema to the schema holding them"
    )
    return _open_in_place(backend, label, no_customers, validate, limits)


def _open_on_spark(url: str, cfg: DataConfig, validate: bool, limits: Limits) -> Source:
    """A folder URL or metastore schema: tables read, the contract checked and the features run by Spark."""
    label = redact(url)
    metastore = source_kind(url) == "metastore"
    if cfg.engine != "spark":
        raise ConfigError(
            f"data source {label} is {'a metastore schema' if metastore else 'a folder URL'}, which only Spark "
            f"reads; set data.engine: spark (or --engine spark), or point data.source at a local folder"
        )
    con = spark.connect()
    backend = spark.SparkBackend(con, label, spark.source_frames(con._session, url, label))
    each = "<catalog>.<schema>.<table>" if metastore else "<table>.parquet or a <table>/ folder of parts"
    no_customers = f"data source {label} has no customers table (tables are read from {', '.join(TABLE_NAMES)}, each {each})"
    return _open_in_place(backend, label, no_customers, validate, limits)


def _open_in_place(backend: Any, label: str, no_customers: str, validate: bool, limits: Limits) -> Source:
    """A source whose tables stay where they are (a database, Spark): `backend` normalises and checks them
    there; `no_customers` is the error when it has no customers table."""
    raw = backend.raw_tables()
    if "customers" not in raw:
        raise ConfigError(no_customers)
    source = _normalise(
        None, raw, None, lambda schemas: backend.fingerprint(raw, schemas), validate, limits, {}, backend
    )
    return dataclasses.replace(source, location=label)


def _on_spark(source: Source, parquet: dict[str, Path] | None) -> Source:
    """The opened (and validated) DuckDB source with its tables on Spark, typed alike."""
    con = spark.connect()
    return dataclasses.replace(
        source, con=con, tables=spark.spark_tables(con, source.tables, parquet), engine="spark"
    )


def source_from_frames(
    frames: dict[str, pd.DataFrame],
    *,
    validate: bool = True,
    cfg: DataConfig | None = None,
    today: dt.date | None = None,
    as_of: dt.date | None = None,
) -> Source:
    """A source from in-memory pandas frames, through the same typing and validation as files (and on
    Spark, with `cfg.engine` spark, as a copy of the typed tables)."""
    unknown = set(frames) - set(TABLE_NAMES)
    if unknown:
        raise ConfigError(f"unknown table(s) {sorted(unknown)}; tables are {list(TABLE_NAMES)}")
    if "customers" not in frames:
        raise ConfigError("a source needs a customers table")
    cfg = cfg or DataConfig()
    limits = contract_limits(cfg, today or utc_today(), as_of)
    con = _connect()
    h = hashlib.blake2b(digest_size=16)
    for name in TABLE_NAMES:
        if name in frames:
            df = frames[name]
            con.con.register(f"raw_{name}", df)
            h.update(name.encode())
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
            h.update(",".join(map(str, df.columns)).encode())
    source = _normalise(con, {n: f"raw_{n}" for n in frames}, None, h.hexdigest(), validate, limits, {})
    return _on_spark(source, None) if cfg.engine == "spark" else source


def _raw_schema(con: duckdb.DuckDBPyConnection, view: str, spec: TableSpec) -> dict[str, str]:
    """Column -> DuckDB type; a contract column holding no value at all gets ALL_NULL (`mark_all_null`)."""
    schema = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()}
    return mark_all_null(con, view, spec, schema)


class _DuckBackend:
    """Where `_normalise` runs for files, DuckDB files and frames: raw views in the DuckDB connection, typed
    views created beside them. `warehouse.PostgresBackend` is the same for a PostgreSQL source."""

    engine = "duckdb"

    def __init__(self, con: Any):
        self.ibis = con
        self.sql = con.con

    def raw_schema(self, view: str, spec: TableSpec) -> dict[str, str]:
        return _raw_schema(self.sql, view, spec)

    def type_problems(self, spec: TableSpec, schema: dict[str, str]) -> list[str]:
        return []  # every type the contract accepts can be tried value by value (TRY_CAST)

    def id_type(self, raw: dict[str, str], schemas: dict[str, dict[str, str]]) -> str:
        return id_type(self.sql, raw, schemas)

    def define(self, name: str, select: str, types: dict[str, str]) -> str:
        """Create the typed view `name` (`types`: its contract columns' types); what a FROM reads it as."""
        self.sql.execute(f"CREATE VIEW {q(name)} AS {select}")
        return q(name)

    def table(self, name: str) -> Any:
        return self.ibis.table(name)


def _normalise(
    con: Any,
    raw: dict[str, str],
    path: Path | None,
    fingerprint: str | Callable[[dict[str, dict[str, str]]], str],
    validate: bool,
    limits: Limits,
    sniffed: dict[str, dict[str, tuple[str, str]]],
    backend: Any = None,
) -> Source:
    """Type, validate and expose the raw tables `raw` (name -> a view or table SQL can read). The contract's
    SQL runs on `backend` (DuckDB on `con` by default); `fingerprint` may be computed from the raw schemas."""
    backend = backend or _DuckBackend(con)
    sql = backend.sql
    schemas = {name: backend.raw_schema(view, TABLES[name]) for name, view in raw.items()}
    report = ValidationReport()
    for name, view in raw.items():
        # An empty table has no meaningful types (an empty text column may read as INTEGER): say "empty".
        if sql.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {view})").fetchone()[0]:
            report.problems.append(empty_problem(TABLES[name]))
        else:
            report.problems += schema_problems(TABLES[name], schemas[name])
            report.problems += backend.type_problems(TABLES[name], schemas[name])
    if report.problems:
        # Typed views cannot be built over missing or mistyped columns: stop here, whatever `validate` says.
        report.raise_if_failed()
    id_type = backend.id_type(raw, schemas)
    extras = {name: _extra_columns(TABLES[name], schemas[name], sniffed.get(name, {})) for name in raw}
    typed: dict[str, str] = {}  # name -> what a FROM reads the typed table as
    for name, view in raw.items():
        spec = TABLES[name]
        cols = [c for c in spec.columns if c.name in schemas[name]]
        select = [f"{normalised_expr(c, schemas[name][c.name], id_type)} AS {q(c.name)}" for c in cols]
        select += [e.sql if e.sql == q(e.name) else f"{e.sql} AS {q(e.name)}" for e in extras[name]]
        types = {c.name: target_type(c, id_type) for c in cols}
        typed[name] = backend.define(name, f"SELECT {', '.join(select)} FROM {view}", types)
    if validate:
        for name, view in raw.items():
            problems, warnings, table_report = check_table(
                sql, TABLES[name], view, schemas[name], id_type, limits, extras[name]
            )
            report.problems += problems
            report.warnings += warnings
            report.tables[name] = table_report
        customers = max(report.tables["customers"].rows, 1)
        for name in raw:
            if name != "customers":
                per_customer = report.tables[name].rows / customers
                problem = orphan_problem(sql, name, typed[name], typed["customers"], per_customer)
                if problem:
                    report.problems.append(problem)
        for warning in report.warnings:
            # Stages do not print the report: the log keeps a warning from being silent there.
            log.warning("input data: %s", warning)
        report.raise_if_failed()
    tables = SourceTables(**{name: backend.table(name) for name in raw})
    if callable(fingerprint):
        fingerprint = fingerprint(schemas)
    end = _data_end_date(sql, typed)
    return Source(path, backend.ibis, tables, end, fingerprint, report, backend.engine)


def _data_end_date(sql: Any, typed: dict[str, str]) -> dt.date:
    """The last date present anywhere in the data: 'today' as far as the data knows."""
    t, customers = q("__t"), typed["customers"]
    parts = [f"SELECT MAX(signup_date) AS d FROM {customers} AS {t}"]
    parts += [f"SELECT MAX(churn_date) FROM {customers} AS {t}"]
    parts += [
        f"SELECT CAST(MAX(ts) AS DATE) FROM {v} AS {t}" for name, v in typed.items() if name != "customers"
    ]
    value = sql.execute(f"SELECT MAX(d) FROM ({' UNION ALL '.join(parts)}) AS {q('__dates')}").fetchone()[0]
    if value is None:
        raise ConfigError("the data source holds no dates at all: customers.signup_date is empty")
    return value


# ---------------------------------------------------------------------------------------------- writing


def _umask_mode(full: int) -> int:
    # mkstemp/mkdtemp create private (0600/0700) paths; published outputs get the usual umask-based mode.
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


@contextlib.contextmanager
def _temp_path_next_to(final: Path, suffix: str = "") -> Iterator[Path]:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix + ".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _umask_mode(0o666))
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_parquet(table: pd.DataFrame | pa.Table, path: Path) -> None:
    """Write Parquet to a temp file beside `path`, then rename it into place."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with _temp_path_next_to(Path(path)) as tmp:
        pq.write_table(table, tmp)


def atomic_write_text(text: str, path: Path) -> None:
    """Write text (UTF-8) atomically."""
    with _temp_path_next_to(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(obj: Any, path: Path) -> None:
    """Write JSON (sorted keys, dates as ISO strings) atomically."""
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n", path)


def _json_default(o: Any) -> Any:
    if isinstance(o, dt.date | dt.datetime | pd.Timestamp):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks: identifies a published output exactly."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def output_sha256(path: Path) -> str:
    """SHA-256 (hex) of a published output: a file's bytes, or for a folder of Parquet parts (Spark's output)
    the bytes of its `*.parquet` files in name order, each preceded by its name (Spark's `_SUCCESS` and
    `.crc` side files are bookkeeping, not data, and left out)."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    h = hashlib.sha256()
    for part in sorted(
        p for p in path.iterdir() if p.suffix == ".parquet" and not p.name.startswith((".", "_"))
    ):
        h.update(part.name.encode() + b"\0")
        with part.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temp dir beside `final`; on success it replaces `final` whole, on error it is removed.

    Readers see either the old directory or the complete new one, never a mix.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, _umask_mode(0o777))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
