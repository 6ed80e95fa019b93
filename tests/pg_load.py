"""Test setup only: load a simulated company's Parquet tables into a PostgreSQL schema (COPY, as CSV)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

_PG_TYPES = {
    pa.int8(): "smallint",
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.float64(): "double precision",
    pa.float32(): "real",
    pa.string(): "text",
    pa.large_string(): "text",
    pa.bool_(): "boolean",
    pa.date32(): "date",
}


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_dictionary(t):
        return _pg_type(t.value_type)
    return _PG_TYPES[t]


def load_company(dsn: str, data_dir: Path, schema: str) -> None:
    """Create `schema` and one table per `<table>.parquet` of `data_dir`, typed like the Parquet columns."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
        for path in sorted(Path(data_dir).glob("*.parquet")):
            table = pq.read_table(path)
            cols = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in table.schema)
            conn.execute(f'CREATE TABLE "{schema}"."{path.stem}" ({cols})')
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
            with (
                conn.cursor() as cur,
                cur.copy(f'COPY "{schema}"."{path.stem}" FROM STDIN (FORMAT csv)') as copy,
            ):
                copy.write(sink.getvalue().to_pybytes())
