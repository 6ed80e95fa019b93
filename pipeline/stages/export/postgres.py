"""PostgreSQL export: upsert the at-risk list into a table keyed by (customer_id, as_of), in one transaction.

Rows go in through COPY into a temporary table, then one INSERT ... ON CONFLICT DO UPDATE, so re-running an
export never duplicates rows and changed probabilities replace the old ones. Rows of the same as-of date that
are no longer on the list (the date was re-scored) are deleted in the same transaction: the table mirrors the
published list of each date.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pandas as pd

from churn_pipeline.core.artifacts import CRM_COLUMNS
from churn_pipeline.core.config import PG_DSN_ENV, PostgresConfig, export_secrets, redact
from churn_pipeline.core.errors import ConfigError, ExportError
from churn_pipeline.stages.export.files import crm_frame
from churn_pipeline.stages.export.target import Delivery, ExportContext, ExportTarget, register

DSN_ENV = PG_DSN_ENV
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_COLUMN_TYPES = {
    "customer_id": "text NOT NULL",
    "as_of": "date NOT NULL",
    "rank": "integer NOT NULL",
    "churn_probability": "double precision NOT NULL",
    "risk_tier": "text",
    "group": "text NOT NULL DEFAULT 'treatment'",
    "expected_value_at_risk": "double precision",
    "uplift": "double precision",
    "expected_saved_value": "double precision",
    "reason_1": "text",
    "reason_2": "text",
    "reason_3": "text",
    "suggested_action": "text",
    "model_version": "text NOT NULL",
}
# Columns added after the first release: a table created by an older version gains them (with their default).
_ADDED_COLUMNS = ("group", "uplift", "expected_saved_value")
_COPY_CHUNK = 1 << 20


@dataclass
class PostgresReport:
    table: str
    dsn: str
    inserted: int
    updated: int
    removed: int

    def summary(self) -> str:
        return (
            f"postgres {self.table} ({self.dsn}): {self.inserted} inserted, {self.updated} updated, "
            f"{self.removed} removed (no longer on the list)"
        )


@register
class PostgresTarget(ExportTarget):
    name = "postgres"
    title = "Postgres"
    config_field = "postgres"
    config_model = PostgresConfig
    settings: PostgresConfig

    def deliver(self, at_risk: pd.DataFrame, as_of: dt.date, context: ExportContext) -> Delivery:
        """Upsert the list in one transaction: all of it is delivered, or nothing (an ExportError)."""
        pg = upsert(at_risk, as_of, self.settings)
        return Delivery(
            delivered=pg.inserted + pg.updated,
            skipped=0,
            failed=0,
            destination=f"{pg.table} ({pg.dsn})",
            details=pg,
            summary=pg.summary(),
        )


def resolve_dsn(cfg: PostgresConfig) -> str:
    """The DSN: env CHURN_PG_DSN overrides `export.postgres.dsn`. The result is a secret (it may hold a
    password): only `redact_dsn(dsn)` may appear in a message, a log line or a file."""
    secret = export_secrets().pg_dsn or cfg.dsn
    dsn = secret.get_secret_value().strip() if secret is not None else ""
    if not dsn:
        raise ConfigError(
            f"no PostgreSQL DSN: set export.postgres.dsn in the config or the {DSN_ENV} environment variable, "
            "e.g. 'host=localhost port=5432 dbname=crm user=churn'"
        )
    return dsn


def redact_dsn(dsn: str) -> str:
    """The DSN with its password redacted (libpq key=value or postgresql:// URL), for messages."""
    return redact(dsn)


def _table_identifier(name: str):
    from psycopg import sql

    if not _TABLE_RE.fullmatch(name):
        raise ConfigError(
            f"export.postgres.table {name!r} is not a plain table name: use letters, digits and _, "
            "optionally schema-qualified (e.g. crm.churn_at_risk)"
        )
    return sql.Identifier(*name.split("."))


def upsert(at_risk: pd.DataFrame, as_of: dt.date, cfg: PostgresConfig) -> PostgresReport:
    """Create the table if missing and upsert the list of `as_of` in one transaction."""
    import psycopg
    from psycopg import sql

    dsn = resolve_dsn(cfg)
    table = _table_identifier(cfg.table)
    frame = crm_frame(at_risk)
    cols = list(CRM_COLUMNS)
    col_ids = sql.SQL(", ").join(map(sql.Identifier, cols))
    updates = sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
        for c in cols
        if c not in ("customer_id", "as_of")
    )
    create = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {t} ({cols}, exported_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (customer_id, as_of))"
    ).format(
        t=table,
        cols=sql.SQL(", ").join(sql.SQL("{} " + _COLUMN_TYPES[c]).format(sql.Identifier(c)) for c in cols),
    )
    csv_bytes = frame.to_csv(index=False, header=False, lineterminator="\n").encode("utf-8")
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute(create)
            for c in _ADDED_COLUMNS:
                cur.execute(
                    sql.SQL("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} " + _COLUMN_TYPES[c]).format(
                        t=table, c=sql.Identifier(c)
                    )
                )
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE churn_export_stage (LIKE {t} INCLUDING DEFAULTS) ON COMMIT DROP"
                ).format(t=table)
            )
            with cur.copy(
                sql.SQL("COPY churn_export_stage ({cols}) FROM STDIN WITH (FORMAT csv)").format(cols=col_ids)
            ) as copy:
                for start in range(0, len(csv_bytes), _COPY_CHUNK):
                    copy.write(csv_bytes[start : start + _COPY_CHUNK])
            # xmax = 0 marks a freshly inserted row, anything else one the conflict clause updated.
            cur.execute(
                sql.SQL(
                    "WITH up AS (INSERT INTO {t} ({cols}) SELECT {cols} FROM churn_export_stage "
                    "ON CONFLICT (customer_id, as_of) DO UPDATE SET {updates}, exported_at = now() "
                    "RETURNING (xmax = 0) AS fresh) "
                    "SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM up"
                ).format(t=table, cols=col_ids, updates=updates)
            )
            inserted, updated = cur.fetchone()
            cur.execute(
                sql.SQL(
                    "DELETE FROM {t} AS d WHERE d.as_of = %s AND NOT EXISTS "
                    "(SELECT 1 FROM churn_export_stage s WHERE s.customer_id = d.customer_id)"
                ).format(t=table),
                (as_of,),
            )
            removed = cur.rowcount
    except psycopg.OperationalError as e:
        raise ExportError(
            f"cannot reach PostgreSQL ({redact_dsn(dsn)}): {redact(str(e).strip())}; check export.postgres.dsn / {DSN_ENV} "
            "and that the server is running. Nothing was written."
        ) from e
    except psycopg.Error as e:
        raise ExportError(
            f"PostgreSQL export into {cfg.table} failed and was rolled back: {redact(str(e).strip())}. If the table exists "
            f"with another layout, give export.postgres.table a new name or align it to columns {cols}."
        ) from e
    return PostgresReport(
        table=cfg.table,
        dsn=redact_dsn(dsn),
        inserted=int(inserted),
        updated=int(updated),
        removed=int(removed),
    )
