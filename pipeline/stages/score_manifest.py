"""What a scoring run records about itself: the typed manifest (model, data, counts, list size, value at risk,
the checks' reports, files, timings) that the run returns, the CLI prints and `manifest.json` is written from."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class ModelInfo:
    """The registered model version that scored, and what was asked for."""

    name: str
    version: str
    requested: str  # the --model-version / scoring.model_version asked for, or "champion"
    trained_at: str | None
    data_fingerprint: str | None


@dataclass(frozen=True)
class DataInfo:
    """The data source scored."""

    source: str
    fingerprint: str
    data_end_date: dt.date


@dataclass(frozen=True)
class Counts:
    """How many customers were scored and listed, per tier (the list's order of tiers by size), and held out."""

    active_scored: int
    at_risk: int
    by_tier: dict[str, int]
    mean_probability_scored: float
    control: int = 0  # listed customers held out as the control group (group=control)


@dataclass(frozen=True)
class ListSize:
    """The at-risk list's size: top `pct` % of the scored customers, `customers` of them, and where `pct` comes from."""

    pct: float
    customers: int
    origin: str


@dataclass(frozen=True)
class ValueAtRisk:
    """Where each customer's value comes from and the list's total expected value at risk."""

    origin: str
    total_expected_value_at_risk: float


@dataclass(frozen=True)
class ValidationCheck:
    """The data contract check (it raises on failure, so a manifest only ever records a pass)."""

    data_end_date: dt.date
    status: Literal["passed"] = "passed"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "data_end_date": self.data_end_date.isoformat()}


@dataclass(frozen=True)
class StalenessCheck:
    """The staleness check: `passed` with the newest activity, or `skipped` (no activity tables) with a reason."""

    status: Literal["passed", "skipped"]
    reason: str | None = None
    newest_activity: dt.date | None = None
    table: str | None = None
    age_days: int | None = None
    max_staleness_days: int | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.status == "skipped":
            return {"status": self.status, "reason": self.reason}
        assert self.newest_activity is not None  # every passed check found the newest activity
        return {
            "status": self.status,
            "newest_activity": self.newest_activity.isoformat(),
            "table": self.table,
            "age_days": self.age_days,
            "max_staleness_days": self.max_staleness_days,
        }


@dataclass(frozen=True)
class DriftCheck:
    """The drift check: PSI per feature (riskiest first) and those between the warn and fail thresholds.

    `skipped` (with a reason) when the model carries no drift reference; failures raise, so are never recorded.
    """

    status: Literal["passed", "warn", "skipped"]
    warnings: dict[str, float] = field(default_factory=dict)
    psi: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    warn_psi: float | None = None
    fail_psi: float | None = None
    # features above fail_psi that were not gated because they trend with time (scoring.drift.trending: warn),
    # with their PSI between the first and the last labelled training snapshot
    trending: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        if self.status == "skipped":
            return {"status": self.status, "reason": self.reason, "warnings": {}, "psi": {}}
        out = {
            "status": self.status,
            "warn_psi": self.warn_psi,
            "fail_psi": self.fail_psi,
            "warnings": dict(self.warnings),
            "psi": dict(self.psi),
        }
        if self.trending:
            out["trending"] = dict(self.trending)
        return out


@dataclass(frozen=True)
class Checks:
    """The reports of the run's checks; the output check raises on failure, so it is recorded as passed."""

    validation: ValidationCheck
    staleness: StalenessCheck
    drift: DriftCheck

    def to_dict(self) -> dict[str, Any]:
        return {
            "validation": self.validation.to_dict(),
            "staleness": self.staleness.to_dict(),
            "drift": self.drift.to_dict(),
            "outputs": {"status": "passed"},
        }


@dataclass(frozen=True)
class ScoringManifest:
    """Everything a published scoring run records; `files` and `timings_seconds` are filled in when publishing."""

    as_of: dt.date
    model: ModelInfo
    data: DataInfo
    counts: Counts
    list_size: ListSize
    value: ValueAtRisk
    checks: Checks
    ranked_by: str = "risk"  # scoring.rank_by: risk, or saved_value (uplift x value)
    uplift_model: ModelInfo | None = None  # the uplift model that ranked the list by saved value
    # data.engine of the run: duckdb, or spark (scores.parquet is then a folder of parts)
    engine: str = "duckdb"
    files: dict[str, str] = field(default_factory=dict)  # published output name -> SHA-256 (`output_sha256`)
    timings_seconds: dict[str, float] = field(default_factory=dict)  # the steps before writing the outputs

    def to_dict(self) -> dict[str, Any]:
        """The `manifest.json` layout (JSON types only: dates as ISO strings)."""
        return {
            "as_of": self.as_of.isoformat(),
            "engine": self.engine,
            "model": dataclasses.asdict(self.model),
            "data": {
                "source": self.data.source,
                "fingerprint": self.data.fingerprint,
                "data_end_date": self.data.data_end_date.isoformat(),
            },
            "counts": dataclasses.asdict(self.counts),
            "list_size": dataclasses.asdict(self.list_size),
            "value": dataclasses.asdict(self.value),
            "checks": self.checks.to_dict(),
            "ranked_by": self.ranked_by,
            "uplift_model": None if self.uplift_model is None else dataclasses.asdict(self.uplift_model),
            "files": dict(self.files),
            "timings_seconds": dict(self.timings_seconds),
        }
