"""PostgreSQL test setup (the server itself is the `pg_dsn` fixture of tests/conftest.py): a simulated company's
Parquet tables loaded into a schema (COPY, as CSV), and a role that must give its password."""

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


def password_only_role(dsn: str, role: str, password: str = "the-right-one") -> str:
    """A role that must log in with `password` over TCP (the fixture's cluster trusts everyone else); the
    DSN of that role, without a password."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        conn.execute("SELECT pg_reload_conf()")
    parts = dict(p.split("=", 1) for p in dsn.split())
    return f"host=127.0.0.1 port={parts['port']} dbname=postgres user={role} connect_timeout=5"
