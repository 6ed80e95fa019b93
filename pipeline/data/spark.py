"""The Spark engine (`data.engine: spark`): a SparkSession from the environment or a local one, and the
contract-typed input tables as ibis tables on it, for the same feature definitions to run there.

Spark reads the source's own Parquet files (or, for an in-memory source, a copy of its normalised tables);
each table is then cast to the schema the DuckDB normalisation gave it, so builders see one typing on both
engines. The contract checks still compile to DuckDB SQL: `io.open_source` validates the same files with
DuckDB before handing them to Spark (a full read of them on the driver machine; contract-on-Spark is the
next step of issue #13).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.tables import SourceTables

if TYPE_CHECKING:  # pyspark is the optional `spark` extra
    from pyspark.sql import DataFrame, SparkSession

LOCAL_MASTER = "local[2]"
# Spark's default of 200 shuffle partitions is for clusters; locally most would be tasks of nothing (the
# 500-customer feature table, warm, on a loaded 2-core machine: 1 partition 13 s, 4 partitions 20 s).
LOCAL_SHUFFLE_PARTITIONS = 2  # one per local core


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
