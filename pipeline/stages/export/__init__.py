"""Export a published at-risk list to where retention teams work, through pluggable targets (`TARGETS`).

Every target reads `<workdir>/scores/as_of=YYYY-MM-DD/at_risk.parquet` as published by `churn score`; an
export never recomputes anything, so what the CRM gets is exactly the list the scoring manifest describes.
The targets (`files`: csv and jsonl, `webhook`, `postgres`) are classes behind one interface,
`target.ExportTarget`, found by name in the registry `target.TARGETS`; `run_export` knows none of them.

Adding a target (say a CRM's bulk API, `hubspot`):

1. Its settings, if any: a model in `churn_pipeline.core.config` (`class HubSpotConfig(_Section)`, secrets
   as `SecretStr` serialised through `_redacted`, like `WebhookConfig.url`) and its section on
   `ExportConfig` (`hubspot: HubSpotConfig = HubSpotConfig()`). A secret the environment may override gets
   a field on `ExportSecrets` there.
2. One new module here, `hubspot.py`, with one `@register` subclass of `ExportTarget`: `name = "hubspot"`,
   `title` (how `churn export --help` names it), `config_field = "hubspot"`, `config_model =
   HubSpotConfig`, and `deliver(at_risk, as_of, context) -> Delivery` returning the counts, a printable
   (redacted) destination, its own typed report as `details`, and `complete=False` for a partial delivery.
   Known failures raise a `ChurnError` subclass (`ExportError`, `ConfigError`) naming the setting to fix;
   anything that may hold a secret goes through `redact` first.
3. Its module name in `TARGET_MODULES` below, so it registers; `churn export --to hubspot` then works,
   and `--help` and the unknown-target error list it.
"""

from __future__ import annotations

import datetime as dt
import importlib
import time
from pathlib import Path

import pandas as pd

from churn_pipeline.core.artifacts import AT_RISK_FILE, published_as_of, score_dir
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.stages.export.target import (
    TARGETS,
    ExportContext,
    ExportResult,
    IncompleteExport,
    listed,
)

# The modules holding targets: each registers its own on import, in this order (the order `--help` and the
# unknown-target error list them in).
TARGET_MODULES = ("files", "webhook", "postgres")
for _module in TARGET_MODULES:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["TARGETS", "ExportResult", "IncompleteExport", "load_at_risk", "run_export", "listed"]


def load_at_risk(cfg: Config, as_of: dt.date | None) -> tuple[dt.date, pd.DataFrame, Path]:
    """The published at-risk list of `as_of` (default: the latest published date) and its file."""
    as_of = published_as_of(cfg.workdir, as_of)
    path = score_dir(cfg.workdir, as_of) / AT_RISK_FILE
    return as_of, pd.read_parquet(path), path


def run_export(cfg: Config, as_of: dt.date | None, target: str, *, progress: bool = False) -> ExportResult:
    """Export the at-risk list of `as_of` to `target`; an incomplete delivery raises IncompleteExport (an
    ExportError) carrying the result."""
    if target not in TARGETS:
        raise ConfigError(f"unknown export target {target!r}; choose one of {listed(TARGETS)}")
    start = time.perf_counter()
    as_of, at_risk, path = load_at_risk(cfg, as_of)
    context = ExportContext(source=path, export_dir=cfg.export_dir, progress=progress)
    delivery = TARGETS[target].from_config(cfg.export).deliver(at_risk, as_of, context)
    result = ExportResult(
        target=target,
        as_of=as_of,
        records=len(at_risk),
        delivered=delivery.delivered,
        skipped=delivery.skipped,
        failed=delivery.failed,
        destination=delivery.destination,
        seconds=time.perf_counter() - start,
        details=delivery.details,
        summary=delivery.summary,
    )
    if not delivery.complete:
        raise IncompleteExport(delivery.summary or f"the {target} export was incomplete", result)
    return result
