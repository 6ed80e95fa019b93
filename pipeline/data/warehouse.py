"""PostgreSQL data sources (`data.source: postgresql://...`): the tables are read in place, never copied.

The contract's SQL (`churn_pipeline.data.contract`, written once in DuckDB's dialect) is transpiled by sqlglot,
the SQL compiler ibis itself uses, and runs on the server: validation is a few aggregate queries there, and only
their results (counts, a few examples) come back. The typed tables are ibis expressions over the same
normalising SELECT, so the feature expressions compile to SQL that PostgreSQL runs; only feature frames come back.

What a database source needs (PostgreSQL 14 or later; `hashtextextended`, `bit_xor`):
- the contract's date, timestamp, number and boolean columns stored with such a type (not as text): the
  database already guarantees every value parses, so text is reported by the type check with the fix;
- customer_id an integer or a text column (text ids stay text: integer-looking text is not converted);
- a login with USAGE on the schema and SELECT on the tables: nothing is created in the database (not even a
  temporary view: the typed tables' column types are known, so ibis need not ask the server for them).

The fingerprint (for the training-set cache) is, per table, its row count and the XOR of a hash of every row's
text, plus the column names and types: any inserted, deleted or changed row changes it. It costs one scan per
table, on the server.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.datatypes as idt
import sqlglot
from ibis.backends.sql.datatypes import DuckDBType
from sqlglot import exp

from churn_pipeline.core.config import redact
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.tables import TABLE_NAMES, TableSpec
from churn_pipeline.data.contract import ACCEPTED, mark_all_null, q

# information_schema.columns.data_type -> the DuckDB type name the contract's rules are written for
_TYPES = {
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "numeric": "DECIMAL",
    "text": "VARCHAR",
    "character varying": "VARCHAR",
    "character": "VARCHAR",
    "date": "DATE",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "boolean": "BOOLEAN",
}
# PostgreSQL type a text column of this kind should be given (for the fix in the message)
_PG_TYPE = {"date": "date", "timestamp": "timestamp", "float": "double precision", "int": "bigint"}


def to_postgres(sql: str) -> str:
    """DuckDB-dialect SQL (the contract's) as PostgreSQL SQL."""
    return sqlglot.parse_one(sql, read="duckdb").transform(_rewrite).sql("postgres")


def to_spark(sql: str, params: list | None = None) -> str:
    """DuckDB-dialect SQL (the contract's) as Spark SQL, the values of its `?` placeholders (`params`) inlined."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    values = iter(params or [])
    tree = tree.transform(lambda n: exp.convert(next(values)) if isinstance(n, exp.Placeholder) else n)
    return tree.transform(_rewrite_spark).sql("spark")


def _finite(node: exp.Anonymous) -> exp.Expression:
    """DuckDB's isfinite(x) as a test both PostgreSQL and Spark have: NaN = NaN there, so NOT IN catches it."""
    arg = node.expressions[0].sql("duckdb")
    bad = ", ".join(f"CAST('{v}' AS DOUBLE)" for v in ("Infinity", "-Infinity", "NaN"))
    return sqlglot.parse_one(f"({arg}) NOT IN ({bad})", read="duckdb")


def _is_call(node: exp.Expression, name: str) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.lower() == name


def _rewrite_spark(node: exp.Expression) -> exp.Expression:
    """The DuckDB constructs of the contract's SQL that Spark lacks, as Spark ones. (A replaced node's children
    are not visited again by `transform`: the rewrites transform the parts they keep themselves.)"""
    if _is_call(node, "isfinite"):
        return _finite(node)
    if _is_call(node, "hash"):
        # hash(<row alias>): the row's hash, from every column (xxhash64 skips nulls: a rare false repeat,
        # which the confirming GROUP BY of `contract._duplicate_rows` drops)
        return exp.Anonymous(this="XXHASH64", expressions=[exp.Star()])
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.UBIGINT:
        return exp.DataType.build("BIGINT")  # xxhash64's hashes are signed
    if isinstance(node, exp.Bracket) and isinstance(node.this, exp.ArrayAgg):
        return _spark_list_slice(node)
    if isinstance(node, exp.Exists) and node.find_ancestor(exp.Where, exp.Having, exp.Join) is None:
        # Spark allows EXISTS in filters only: elsewhere as a scalar subquery over at most one row
        inner = node.this.transform(_rewrite_spark).sql("spark")
        return sqlglot.parse_one(f"(SELECT COUNT(*) > 0 FROM ({inner} LIMIT 1) AS `__exists`)", read="spark")
    return node


def _spark_list_slice(node: exp.Bracket) -> exp.Expression:
    """DuckDB's `LIST([DISTINCT] v ORDER BY k...)[a:b]` (a few sorted examples) in Spark: collect (value, keys)
    structs, sort them by the keys, slice, keep the values."""
    arg = node.this.this
    keys = [o.this for o in arg.expressions] if isinstance(arg, exp.Order) else []
    value = arg.this if isinstance(arg, exp.Order) else arg
    distinct = isinstance(value, exp.Distinct)
    value = value.expressions[0] if distinct else value
    fields = [f"{k.transform(_rewrite_spark).sql('spark')} AS `k{i}`" for i, k in enumerate(keys)]
    fields.append(f"{value.transform(_rewrite_spark).sql('spark')} AS `v`")
    (span,) = node.expressions
    start, end = int(span.this.name), int(span.expression.name)
    collect = "COLLECT_SET" if distinct else "COLLECT_LIST"
    return sqlglot.parse_one(
        f"TRANSFORM(SLICE(ARRAY_SORT({collect}(STRUCT({', '.join(fields)}))), {start}, {end - start + 1}), "
        f"`__s` -> `__s`.`v`)",
        read="spark",
    )


def _rewrite(node: exp.Expression) -> exp.Expression:
    """The few DuckDB constructs sqlglot leaves as they are, as PostgreSQL ones."""
    if isinstance(node, exp.Select) and any(
        j.args.get("kind") == "ANTI" for j in node.args.get("joins") or []
    ):
        return _without_anti_joins(node)
    if _is_call(node, "isfinite"):
        # PostgreSQL's isfinite takes dates only
        return _finite(node)
    if _is_call(node, "hash"):
        # A row's text, hashed: every column type has one (hash_record_extended needs a hash per column type).
        row = exp.Cast(this=node.expressions[0], to=exp.DataType.build("TEXT"))
        return exp.Anonymous(this="hashtextextended", expressions=[row, exp.Literal.number(0)])
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.UBIGINT:
        return exp.DataType.build("BIGINT")  # hashtextextended's hashes are signed: bigint
    if isinstance(node, exp.Bracket) and isinstance(node.this, exp.Func):
        # ARRAY_AGG(...)[1:3] parses in PostgreSQL only with the call in parentheses.
        node.set("this", exp.Paren(this=node.this))
    if isinstance(node, exp.Subquery) and not node.alias and isinstance(node.parent, exp.From | exp.Join):
        # PostgreSQL before 16 requires an alias on every subquery in FROM.
        node.set("alias", exp.TableAlias(this=exp.to_identifier(f"__q{id(node)}")))
    return node


def _without_anti_joins(select: exp.Select) -> exp.Select:
    """`FROM a ANTI JOIN b USING (k)` as `FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.k = a.k)`."""
    left = (
        select.args.get("from_") or select.args["from"]
    ).this  # the key's name depends on sqlglot's version
    if not left.alias:
        left.set("alias", exp.TableAlias(this=exp.to_identifier(f"__l{id(left)}")))
    outer = left.alias
    for join in [j for j in select.args["joins"] if j.args.get("kind") == "ANTI"]:
        inner = f"__a{id(join)}"
        right = join.this.copy()
        right.set("alias", exp.TableAlias(this=exp.to_identifier(inner)))
        match = exp.and_(
            *(exp.column(k.name, inner).eq(exp.column(k.name, outer)) for k in join.args["using"])
        )
        select = select.where(
            exp.not_(exp.Exists(this=exp.select("1").from_(right).where(match))), copy=False
        )
        join.pop()
    return select


@dataclass
class QueryResult:
    """A query's rows, fetched like a DuckDB result's."""

    rows: list[tuple]

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple]:
        return self.rows


class PostgresSQL:
    """Runs the contract's DuckDB-dialect SQL on PostgreSQL: `execute(sql, params)` like a DuckDB connection."""

    def __init__(self, con: Any, label: str):
        self.con = con  # psycopg connection
        self.label = label  # the redacted URL

    def execute(self, sql: str, params: list | None = None) -> QueryResult:
        return self.native(to_postgres(sql), params)

    def native(self, sql: str, params: list | tuple | None = None) -> QueryResult:
        """Run PostgreSQL SQL as it is; a failure is a ConfigError naming the source (redacted)."""
        import psycopg

        try:
            with self.con.cursor() as cur:
                cur.execute(sql, params)
                return QueryResult(cur.fetchall() if cur.description else [])
        except psycopg.Error as e:
            raise ConfigError(
                f"PostgreSQL data source {self.label}: a query failed: {redact(str(e).strip())}"
            ) from None


def _feature_compiler() -> Any:
    """ibis' PostgreSQL compiler with the builtins the feature builders (`features.base`) call by their DuckDB
    and Spark names: COUNT_IF, MAX_BY (DuckDB's ARG_MAX: rows with a null value or key skipped), BIT_COUNT of a
    bigint (PostgreSQL counts the bits of a bit string), a bigint shifted by a bigint (PostgreSQL shifts by
    an integer), means of integers as floats (PostgreSQL's are numeric), booleans cast to any integer width."""
    from ibis.backends.sql.compilers.base import InputType
    from ibis.backends.sql.compilers.postgres import PostgresCompiler

    class FeatureCompiler(PostgresCompiler):
        def visit_ScalarUDF(self, op: Any, **kw: Any) -> Any:
            if op.__input_type__ == InputType.BUILTIN and op.__func_name__ == "bit_count":
                (arg,) = kw.values()
                return self.f.bit_count(
                    exp.Cast(this=arg, to=exp.DataType.build("BIT(64)", dialect="postgres"))
                )
            return super().visit_ScalarUDF(op, **kw)

        def visit_AggUDF(self, op: Any, *, where: Any, **kw: Any) -> Any:
            name = op.__func_name__ if op.__input_type__ == InputType.BUILTIN else None
            if name == "count_if":
                (cond,) = kw.values()
                cond = cond if where is None else exp.and_(cond, where)
                return exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=cond))
            if name == "max_by":
                value, key = kw.values()
                present = exp.not_(exp.Is(this=value, expression=exp.Null()))
                where = present if where is None else exp.and_(present, where)
                return self._argminmax(op, arg=value, key=key, where=where, desc=True)
            return super().visit_AggUDF(op, where=where, **kw)

        def visit_Mean(self, op: Any, *, arg: Any, where: Any) -> Any:
            # AVG of integers is numeric in PostgreSQL: as the float64 ibis declares (and DuckDB returns).
            return self.cast(super().visit_Mean(op, arg=arg, where=where), op.dtype)

        def visit_Cast(self, op: Any, *, arg: Any, to: Any) -> Any:
            if op.arg.dtype.is_boolean() and to.is_integer() and to != idt.int32:
                # PostgreSQL casts a boolean to integer (int4) only: through it to the other widths.
                arg = self.cast(arg, idt.int32)
            return super().visit_Cast(op, arg=arg, to=to)

        def visit_BitwiseLeftShift(self, op: Any, *, left: Any, right: Any) -> Any:
            return exp.BitwiseLeftShift(
                this=left, expression=exp.Cast(this=right, to=exp.DataType.build("INT"))
            )

    return FeatureCompiler()


def connect(url: str, label: str) -> Any:
    """An ibis PostgreSQL backend on `url` (libpq URL; a missing password comes from PGPASSWORD or ~/.pgpass),
    its session in UTC."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a core dependency
        raise ConfigError("data.source is a PostgreSQL URL but psycopg is not installed") from None
    if not hasattr(ibis, "postgres"):
        raise ConfigError(
            "data.source is a PostgreSQL URL but ibis' postgres backend is not installed: "
            "pip install 'churn-pipeline[postgres]'"
        )
    try:
        raw = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        raise ConfigError(
            f"cannot reach the PostgreSQL data source {label}: {redact(str(e).strip())}; check data.source "
            f"(or --data) and the password in PGPASSWORD or ~/.pgpass"
        ) from None
    con = ibis.postgres.from_connection(raw)
    # The data's time zone (ibis sets it too): a timestamptz cast to timestamp is then its UTC time.
    raw.execute("SET TIME ZONE 'UTC'")
    con.compiler = _feature_compiler()
    return con


class PostgresBackend:
    """Where `io._normalise` runs for a PostgreSQL source: raw tables in `schema`, typed tables as ibis
    expressions over a SELECT (no view is created in the database)."""

    engine = "postgres"

    def __init__(self, con: Any, label: str, schema: str | None):
        self.ibis = con
        self.sql = PostgresSQL(con.con, label)
        self.label = label
        self.schema = schema or self.sql.execute("SELECT current_schema()").fetchone()[0]
        if self.schema is None:
            raise ConfigError(
                f"PostgreSQL data source {label}: no schema on the search_path; set data.db_schema"
            )
        self._typed: dict[str, tuple[str, dict[str, str]]] = {}
        self._columns = self._read_columns()

    def _read_columns(self) -> dict[str, dict[str, str]]:
        rows = self.sql.native(
            "SELECT table_name, column_name, data_type, udt_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = ANY(%s) ORDER BY table_name, ordinal_position",
            (self.schema, list(TABLE_NAMES)),
        ).fetchall()
        columns: dict[str, dict[str, str]] = {}
        for table, column, data_type, udt in rows:
            shown = udt if data_type in {"USER-DEFINED", "ARRAY"} else data_type
            columns.setdefault(table, {})[column] = _TYPES.get(data_type, shown.upper())
        return columns

    def raw_tables(self) -> dict[str, str]:
        """Table name -> its qualified name, for the contract's tables the schema holds."""
        return {name: f"{q(self.schema)}.{q(name)}" for name in TABLE_NAMES if name in self._columns}

    def raw_schema(self, view: str, spec: TableSpec) -> dict[str, str]:
        return mark_all_null(self.sql, view, spec, dict(self._columns[spec.name]))

    def type_problems(self, spec: TableSpec, schema: dict[str, str]) -> list[str]:
        """Contract columns the database holds as text (or a boolean as a number): typed values are what a
        database source promises, and PostgreSQL cannot try a cast row by row."""
        problems = []
        for col in spec.columns:
            t = schema.get(col.name)
            if t is None or col.kind in {"id", "string"}:
                continue
            text = t == "VARCHAR" and col.kind in _PG_TYPE
            if text or (col.kind == "bool" and t not in {"BOOLEAN", "NULL"}):
                target = _PG_TYPE.get(col.kind, "boolean")
                problems.append(
                    f"{spec.name}.{col.name}: type {t} in the database, expected {ACCEPTED[col.kind]} stored as "
                    f"one; ALTER TABLE {self.schema}.{spec.name} ALTER COLUMN {col.name} TYPE {target} USING "
                    f"{col.name}::{target}, or point data.db_schema at views that cast it"
                )
        return problems

    def id_type(self, raw: dict[str, str], schemas: dict[str, dict[str, str]]) -> str:
        """BIGINT when every table's customer_id is an integer column, else VARCHAR."""
        types = [schemas[name].get("customer_id") for name in raw]
        integer = {"SMALLINT", "INTEGER", "BIGINT"}
        return "BIGINT" if all(t is None or t in integer for t in types) else "VARCHAR"

    def define(self, name: str, select: str, types: dict[str, str]) -> str:
        """Keep the typed table's SELECT (`types`: its contract columns' types); what a FROM reads it as."""
        self._typed[name] = (select, types)
        return f"({select})"

    def table(self, name: str) -> Any:
        """The typed table as an ibis expression over its SELECT. The column types are known (the contract's,
        and the others as ibis reads them from the catalog, zoned timestamps made plain as the SELECT does), so
        ibis need not ask the server for them (through a temporary view)."""
        select, types = self._typed[name]
        raw = self.ibis.get_schema(name, database=self.schema)
        schema = {}
        for column, dtype in raw.items():
            if column in types:
                dtype = DuckDBType.from_string(types[column])
            elif dtype.is_timestamp() and dtype.timezone is not None:
                dtype = idt.Timestamp(scale=dtype.scale)
            schema[column] = dtype
        return self.ibis.sql(to_postgres(select), schema=ibis.schema(schema))

    def fingerprint(self, raw: dict[str, str], schemas: dict[str, dict[str, str]]) -> str:
        """Row count and XOR of row hashes per table (one scan each), the columns, and where they are."""
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([self.label, self.schema, schemas], sort_keys=True).encode())
        for name, view in sorted(raw.items()):
            n, xor = self.sql.native(
                f"SELECT COUNT(*), bit_xor(hashtextextended(CAST(t AS TEXT), 0)) FROM {view} AS t"
            ).fetchone()
            h.update(f"{name}:{n}:{xor}".encode())
        return h.hexdigest()
