"""The Spark engine (`data.engine: spark`): a SparkSession from the environment or a local one, and the
contract-typed input tables as ibis tables on it, for the same feature definitions to run there.

A local folder: Spark reads the source's own Parquet files (or, for an in-memory source, a copy of its
normalised tables), after `io.open_source` has validated them with DuckDB; each table is then cast to the
schema the DuckDB normalisation gave it, so builders see one typing on both engines.

Sources only Spark can reach (`SparkBackend`): a folder URL on a Hadoop-compatible file system (s3a://,
abfss://, gs://, hdfs://, dbfs:/, file:///; the cluster's connectors and credentials do the reading) holding
`<table>.parquet` files or `<table>/` folders of parts (a `<table>/` holding a `_delta_log` is read as Delta),
or a metastore schema (`metastore:<catalog>.<schema>`: Hive, Unity Catalog; Delta tables registered there read
the same way) whose tables are `<catalog>.<schema>.<table>`. Nothing is read on the driver: the contract's
SQL (DuckDB's dialect, `data.contract`) is transpiled to Spark SQL by sqlglot (`warehouse.to_spark`) and runs
over temporary views of the tables, and the typed tables are temporary views over the same normalising SELECT.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
from ibis.backends.sql.datatypes import DuckDBType

from churn_pipeline.core.config import metastore_schema, redact, source_kind
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.tables import TABLE_NAMES, SourceTables, TableSpec
from churn_pipeline.data.contract import id_type, mark_all_null, q
from churn_pipeline.data.warehouse import QueryResult, to_spark

if TYPE_CHECKING:  # pyspark is the optional `spark` extra
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType

LOCAL_MASTER = "local[2]"
# Spark's default of 200 shuffle partitions is for clusters; locally most would be tasks of nothing (the
# 500-customer feature table, warm, on a loaded 2-core machine: 1 partition 13 s, 4 partitions 20 s).
LOCAL_SHUFFLE_PARTITIONS = 2  # one per local core
# The local driver JVM is also the executor: Spark's default 1 GB heap runs out building the feature table of
# a 1M-customer company (bench spark: OutOfMemoryError), which runs in 4 GB (peak RSS of the whole process
# tree 5.9-6.8 GB). A quarter of the machine's memory, at most 4 GB, at least Spark's 1 GB.
LOCAL_DRIVER_MEMORY_MB = max(
    1024, min(4096, (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) >> 22)
)


def spark_session() -> SparkSession:
    """The active SparkSession (Databricks, a notebook), else the one spark-submit configured (its master and
    settings), else a local one (`LOCAL_MASTER`); every one in UTC with Arrow transfers."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise ConfigError(
            "data.engine is spark but pyspark is not installed: pip install 'churn-pipeline[spark]' "
            "(and a Java 17+ runtime), or set data.engine: duckdb"
        ) from e
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = (
        SparkSession.builder.appName("churn-pipeline")
        .config("spark.sql.session.timeZone", "UTC")  # the data's time zone; ibis sets it again on connect
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")  # toPandas/createDataFrame via Arrow
        .config("spark.ui.showConsoleProgress", "false")  # it would draw over our own progress bars
    )
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # Started by spark-submit (or the pyspark shell): its --master and --conf are the user's cluster
        # settings, which the local defaults below would override.
        return builder.getOrCreate()
    # Local Python workers (pandas UDFs: scoring) must run this interpreter, which has the project and its
    # dependencies; pyspark's default is whatever `python3` is on the PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    submit_args = os.environ.get("PYSPARK_SUBMIT_ARGS", "")
    if "driver-memory" not in submit_args and "spark.driver.memory" not in submit_args:  # the user's wins
        builder = builder.config("spark.driver.memory", f"{LOCAL_DRIVER_MEMORY_MB}m")  # read at JVM start
    return (
        builder.master(LOCAL_MASTER)
        .config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def connect(session: SparkSession | None = None) -> Any:
    """An ibis PySpark backend over `session` (default: `spark_session()`); it sets the session time zone to UTC."""
    return ibis.pyspark.connect(session if session is not None else spark_session())


def spark_frame(con: Any, expr: Any) -> DataFrame:
    """The Spark DataFrame of an ibis expression on the PySpark backend `con`, unexecuted (ibis' own
    `to_pyarrow`/`execute` would collect it to the driver)."""
    con._run_pre_execute_hooks(expr)  # registers in-memory tables (ibis.memtable) the expression uses
    return con._session.sql(con.compile(expr))


def spark_tables(con: Any, typed: SourceTables, parquet: dict[str, Path | str] | None = None) -> SourceTables:
    """`typed` (a DuckDB source's normalised tables) on the Spark backend `con` (over `spark_session()`),
    with the same schemas.

    With `parquet` (table -> Parquet file or folder), Spark reads those files; without, the normalised
    tables are copied over (in-memory sources: tests and small data only).
    """
    tables = {}
    for name in typed.present():
        table = getattr(typed, name)
        schema = table.schema()
        view = f"churn_{name}_{uuid.uuid4().hex}"  # temp views are session-wide: one name per opened source
        if parquet is not None:
            # mergeSchema: parts may differ in columns, as DuckDB's `union_by_name` allows
            raw = con.read_parquet(str(parquet[name]), table_name=view, mergeSchema="true")
        else:
            # From Arrow, not pandas: a pandas copy turns a nullable int column's nulls into NaN, which
            # Spark's ANSI casts reject
            spark_session().createDataFrame(table.to_pyarrow()).createOrReplaceTempView(view)
            raw = con.table(view)
        tables[name] = raw.select(*schema.names).cast(schema)
    return SourceTables(**tables)


# ------------------------------------------------------------------------------ sources only Spark can read


def _error_class(e: Exception) -> str | None:
    get = getattr(e, "getCondition", None) or getattr(e, "getErrorClass", None)
    return get() if get else None


def _analysed(read: Callable[[], DataFrame]) -> DataFrame | None:
    """The frame `read` makes, once Spark has resolved it (its schema: classic Spark resolves a read at once,
    Spark Connect when asked), or None when its path or table does not exist."""
    from pyspark.errors import AnalysisException

    try:
        frame = read()
        frame.schema  # noqa: B018 - resolving it is what tells whether it exists
    except AnalysisException as e:
        if _error_class(e) in {"PATH_NOT_FOUND", "TABLE_OR_VIEW_NOT_FOUND"}:
            return None
        raise
    return frame


def _folder_table(session: SparkSession, root: str, name: str, label: str) -> DataFrame | None:
    """Table `name` of the folder URL `root`: `<name>.parquet` or a `<name>/` folder (of Parquet parts, or a
    Delta table); None when neither exists."""
    reader = session.read.option("mergeSchema", "true")  # parts may differ in columns (DuckDB: union_by_name)
    paths = (f"{root}/{name}.parquet", f"{root}/{name}")
    found = {p: _analysed(lambda p=p: reader.parquet(p)) for p in paths}
    found = {p: f for p, f in found.items() if f is not None}
    if len(found) > 1:
        raise ConfigError(
            f"data source {label}: table {name} is given more than once ({', '.join(found)}); keep one"
        )
    if not found:
        return None
    path, frame = next(iter(found.items()))
    if path.endswith(f"/{name}") and _analysed(
        lambda: session.read.format("binaryFile").load(f"{path}/_delta_log")
    ):
        # Read as Parquet, a Delta table's folder would include the files its log has removed
        try:
            return session.read.format("delta").load(path)
        except Exception as e:
            raise ConfigError(
                f"data source {label}: {name}/ is a Delta table and this Spark cannot read Delta "
                f"({redact(str(e).splitlines()[0])}); add delta-spark to the session, or register the table in "
                f"the metastore and set data.source: metastore:<catalog>.<schema>"
            ) from None
    return frame


def source_frames(session: SparkSession, url: str, label: str) -> dict[str, DataFrame]:
    """The contract tables a folder URL or a `metastore:` schema holds, as (unread) Spark DataFrames."""
    from pyspark.errors import AnalysisException

    frames: dict[str, DataFrame] = {}
    try:
        if source_kind(url) == "metastore":
            try:
                parts = metastore_schema(url)
            except ValueError as e:
                raise ConfigError(str(e)) from None
            for name in TABLE_NAMES:
                ident = ".".join(f"`{p}`" for p in (*parts, name))
                frame = _analysed(lambda ident=ident: session.table(ident))
                if frame is not None:
                    frames[name] = frame
        else:
            root = url.rstrip("/")
            for name in TABLE_NAMES:
                frame = _folder_table(session, root, name, label)
                if frame is not None:
                    frames[name] = frame
    except AnalysisException as e:
        # a missing schema or catalog, an empty folder (no schema to infer), a refused credential...
        why = redact(str(e).splitlines()[0])
        if "TIMESTAMP(NANOS" in why:
            why += " (Spark reads microsecond timestamps: write them so, e.g. pyarrow coerce_timestamps='us')"
        raise ConfigError(f"data source {label}: Spark cannot read it: {why}") from None
    return frames


def duckdb_type(dtype: DataType) -> str:
    """The DuckDB name of a Spark type, as the contract's rules are written for (`contract.type_ok`)."""
    from pyspark.sql import types as st

    names = {
        st.StringType: "VARCHAR",
        st.CharType: "VARCHAR",
        st.VarcharType: "VARCHAR",
        st.LongType: "BIGINT",
        st.IntegerType: "INTEGER",
        st.ShortType: "SMALLINT",
        st.ByteType: "TINYINT",
        st.DoubleType: "DOUBLE",
        st.FloatType: "FLOAT",
        st.DateType: "DATE",
        st.TimestampNTZType: "TIMESTAMP",
        # Spark's TIMESTAMP is an instant (shown in the session time zone), as DuckDB's TIMESTAMPTZ
        st.TimestampType: "TIMESTAMP WITH TIME ZONE",
        st.BooleanType: "BOOLEAN",
        st.NullType: "NULL",
        st.BinaryType: "BLOB",
    }
    if isinstance(dtype, st.DecimalType):
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    return names.get(type(dtype), dtype.simpleString().upper())


class SparkSQL:
    """Runs the contract's DuckDB-dialect SQL on Spark: `execute(sql, params)` like a DuckDB connection."""

    def __init__(self, session: SparkSession, label: str):
        self.session = session
        self.label = label

    def execute(self, sql: str, params: list | None = None) -> QueryResult:
        return self.native(to_spark(sql, params))

    def native(self, sql: str) -> QueryResult:
        """Run Spark SQL as it is and collect its (few) rows; a failure is a ConfigError naming the source."""
        from pyspark.errors import PySparkException

        try:
            return QueryResult([tuple(r) for r in self.session.sql(sql).collect()])
        except PySparkException as e:
            raise ConfigError(
                f"Spark data source {self.label}: a query failed: {redact(str(e).splitlines()[0])}"
            ) from None


class SparkBackend:
    """Where `io._normalise` runs for a source only Spark reads: raw tables as temporary views of `frames`,
    typed tables as temporary views over the normalising SELECT, the contract's SQL transpiled to Spark's."""

    engine = "spark"

    def __init__(self, con: Any, label: str, frames: dict[str, DataFrame]):
        self.ibis = con
        self.session = con._session
        self.sql = SparkSQL(self.session, label)
        self.label = label
        self._tag = uuid.uuid4().hex  # temp views are session-wide: one name per opened source
        self._schemas = {}
        for name, frame in frames.items():
            frame.createOrReplaceTempView(self._view("raw", name))
            self._schemas[name] = {f.name: duckdb_type(f.dataType) for f in frame.schema.fields}
        self._typed: dict[str, tuple[str, dict[str, str]]] = {}

    def _view(self, kind: str, name: str) -> str:
        return f"churn_{kind}_{name}_{self._tag}"

    def raw_tables(self) -> dict[str, str]:
        """Table name -> the raw view, as a FROM reads it."""
        return {name: q(self._view("raw", name)) for name in self._schemas}

    def raw_schema(self, view: str, spec: TableSpec) -> dict[str, str]:
        return mark_all_null(self.sql, view, spec, dict(self._schemas[spec.name]))

    def type_problems(self, spec: TableSpec, schema: dict[str, str]) -> list[str]:
        return []  # Spark tries every cast the contract needs value by value (TRY_CAST), as DuckDB does

    def id_type(self, raw: dict[str, str], schemas: dict[str, dict[str, str]]) -> str:
        return id_type(self.sql, raw, schemas)

    def define(self, name: str, select: str, types: dict[str, str]) -> str:
        """Create the typed view of table `name` (`types`: its contract columns' types); what a FROM reads it as."""
        view = self._view("typed", name)
        self.sql.native(f"CREATE OR REPLACE TEMPORARY VIEW `{view}` AS {to_spark(select)}")
        self._typed[name] = (view, types)
        return q(view)

    def table(self, name: str) -> Any:
        """The typed table on the ibis PySpark backend, its contract columns with the types a DuckDB source gives."""
        view, types = self._typed[name]
        table = self.ibis.table(view)
        return table.cast({c: DuckDBType.from_string(t) for c, t in types.items()})

    def fingerprint(self, raw: dict[str, str], schemas: dict[str, dict[str, str]]) -> str:
        """Row count and XOR of row hashes per table (one scan each on the cluster), the columns, and where."""
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([self.label, schemas], sort_keys=True).encode())
        for name in sorted(raw):
            n, xor = self.sql.native(
                f"SELECT COUNT(*), BIT_XOR(XXHASH64(*)) FROM `{self._view('raw', name)}`"
            ).fetchone()
            h.update(f"{name}:{n}:{xor}".encode())
        return h.hexdigest()
