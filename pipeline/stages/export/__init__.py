"""Export a published at-risk list to where retention teams work: csv, jsonl, webhook or postgres.

Every target reads `<workdir>/scores/as_of=YYYY-MM-DD/at_risk.parquet` as published by `churn score`; an
export never recomputes anything, so what the CRM gets is exactly the list the scoring manifest describes.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from churn_pipeline.core.artifacts import AT_RISK_FILE, WEBHOOK_LEDGER_FILE, published_as_of_dates, score_dir
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import ConfigError, ExportError, OutputMissingError

TARGETS = ("csv", "jsonl", "webhook", "postgres")


@dataclass
class ExportResult:
    """What an export delivered; `details` holds the target's own figures (paths, batches, rows upserted)."""

    target: str
    as_of: dt.date
    records: int
    delivered: int
    skipped: int
    failed: int
    destination: str
    seconds: float
    details: dict = field(default_factory=dict)


def load_at_risk(cfg: Config, as_of: dt.date | None) -> tuple[dt.date, pd.DataFrame, Path]:
    """The published at-risk list of `as_of` (default: the latest published date) and its file."""
    if as_of is None:
        dates = published_as_of_dates(cfg.workdir)
        if not dates:
            raise OutputMissingError(
                f"no published at-risk list under {cfg.workdir / 'scores'}: run `churn score` first"
            )
        as_of = dates[-1]
    path = score_dir(cfg.workdir, as_of) / AT_RISK_FILE
    if not path.is_file():
        raise OutputMissingError(
            f"no at-risk list for as-of {as_of} ({path} is missing): run `churn score --as-of {as_of}` first"
        )
    return as_of, pd.read_parquet(path), path


def run_export(cfg: Config, as_of: dt.date | None, target: str, *, progress: bool = False) -> ExportResult:
    """Export the at-risk list of `as_of` to `target`; an incomplete delivery raises ExportError with a report."""
    if target not in TARGETS:
        raise ConfigError(f"unknown export target {target!r}; choose one of {', '.join(TARGETS)}")
    start = time.perf_counter()
    as_of, at_risk, path = load_at_risk(cfg, as_of)
    n = len(at_risk)

    if target in ("csv", "jsonl"):
        from churn_pipeline.stages.export.files import write_csv, write_jsonl

        out = cfg.export_dir / f"at_risk_{as_of.isoformat()}.{target}"
        (write_csv if target == "csv" else write_jsonl)(at_risk, out)
        return ExportResult(
            target, as_of, n, n, 0, 0, str(out), time.perf_counter() - start, {"path": str(out)}
        )

    if target == "webhook":
        from churn_pipeline.data.io import file_sha256
        from churn_pipeline.stages.export.webhook import deliver

        sha = file_sha256(path)
        report = deliver(
            at_risk, as_of, cfg.export.webhook, path.parent / WEBHOOK_LEDGER_FILE, sha, progress=progress
        )
        result = ExportResult(
            target,
            as_of,
            n,
            report.sent,
            report.already_acknowledged,
            n - report.acknowledged,
            report.endpoint,
            time.perf_counter() - start,
            {
                "batches_sent": report.batches_sent,
                "retries": report.retries,
                "failed_batches": [f.batch for f in report.failures],
                "not_attempted": report.not_attempted,
                "ledger": str(report.ledger),
                "summary": report.summary(),
            },
        )
        if not report.complete:
            err = ExportError(report.summary())
            err.result = result  # the CLI prints the delivery summary from it
            raise err
        return result

    from churn_pipeline.stages.export.postgres import upsert

    pg = upsert(at_risk, as_of, cfg.export.postgres)
    return ExportResult(
        target,
        as_of,
        n,
        pg.inserted + pg.updated,
        0,
        0,
        f"{pg.table} ({pg.dsn})",
        time.perf_counter() - start,
        {"inserted": pg.inserted, "updated": pg.updated, "removed": pg.removed, "summary": pg.summary()},
    )
