"""The export-target interface (`ExportTarget`), what a delivery reports, and the registry of targets (`TARGETS`).

A target is one subclass of `ExportTarget` decorated with `@register`: `run_export` finds it by its `name`,
builds it from its own section of the export config (`config_field` on `ExportConfig`, validated as
`config_model`) and hands it the published list; it never needs to know which target it runs.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel

from churn_pipeline.core.config import ExportConfig
from churn_pipeline.core.errors import ExportError

TARGETS: dict[str, type[ExportTarget]] = {}


def register(cls: type[ExportTarget]) -> type[ExportTarget]:
    """Class decorator: make a target available by its `name` to `run_export` and `churn export --to`.

    A target with settings names its section of `ExportConfig` (`config_field`) and that section's model
    (`config_model`); a mismatch is a programming error, caught when the target's module is imported.
    """
    if cls.config_field is not None:
        field = ExportConfig.model_fields.get(cls.config_field)
        if field is None or field.annotation is not cls.config_model:
            raise TypeError(
                f"export target {cls.name!r}: ExportConfig.{cls.config_field} must be declared as "
                f"{getattr(cls.config_model, '__name__', cls.config_model)} (in churn_pipeline.core.config)"
            )
    TARGETS[cls.name] = cls
    return cls


def listed(words: Iterable[str], last: str = ", ") -> str:
    """Words joined for a message, `last` before the final one: `listed(TARGETS, " or ")` is
    `csv, jsonl, webhook or postgres` (the registry's order, i.e. registration order)."""
    words = list(words)
    return last.join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


@dataclass(frozen=True)
class ExportContext:
    """What every target gets besides the list: where it was published, where file exports go, and
    whether to show progress."""

    source: Path  # the published at_risk.parquet the list was read from
    export_dir: Path  # export.out_dir, default <workdir>/exports
    progress: bool = False


@dataclass(frozen=True)
class Delivery:
    """What a target did with one list: record counts, where it went, and its own typed report."""

    delivered: int  # records sent/written in this run
    skipped: int  # records already delivered by an earlier run
    failed: int  # records not delivered
    destination: str  # a path, or a redacted endpoint / table: safe to print
    details: Any  # the target's own report (e.g. WebhookReport, PostgresReport)
    summary: str | None = None  # plain-words report printed after the counts
    complete: bool = True  # False: run_export raises IncompleteExport with `summary` as its message


@dataclass
class ExportResult:
    """What an export delivered; `details` is the target's own typed report (paths, batches, rows upserted)."""

    target: str
    as_of: dt.date
    records: int
    delivered: int
    skipped: int
    failed: int
    destination: str
    seconds: float
    details: Any = None
    summary: str | None = None


class IncompleteExport(ExportError):
    """An export that delivered part of the list; `result` says what went where (the CLI prints it)."""

    def __init__(self, message: str, result: ExportResult):
        super().__init__(message)
        self.result = result


class ExportTarget(ABC):
    """One place an at-risk list can go. Subclasses set `name` and `title` and, when they have settings,
    `config_field` and `config_model`; they are built with those settings (None without)."""

    name: ClassVar[str]  # the `--to` value
    title: ClassVar[str]  # how `churn export --help` names it, e.g. "a webhook"
    config_field: ClassVar[str | None] = None  # its section of ExportConfig, e.g. "webhook"
    config_model: ClassVar[type[BaseModel] | None] = None  # that section's model, e.g. WebhookConfig

    def __init__(self, settings: BaseModel | None = None):
        self.settings = settings

    @classmethod
    def from_config(cls, export: ExportConfig) -> ExportTarget:
        """The target built with its section of the export config."""
        return cls(getattr(export, cls.config_field) if cls.config_field else None)

    @abstractmethod
    def deliver(self, at_risk: pd.DataFrame, as_of: dt.date, context: ExportContext) -> Delivery:
        """Deliver the published list of `as_of`; never modifies it. Known failures raise ChurnError
        subclasses with a message naming the setting to fix; a partial delivery returns complete=False."""
