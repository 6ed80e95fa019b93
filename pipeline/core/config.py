"""One validated configuration object, loaded from `configs/*.yaml`.

Every section is a frozen pydantic model with `extra="forbid"`: an unknown or misspelt key is an error
that names the key, never a silent default. Functions receive the typed section they need.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn_pipeline.core.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DATABASE_SCHEMES = ("postgresql", "postgres")
# Hadoop-compatible file systems Spark reads a folder of Parquet tables from (the cluster provides the connector)
LAKE_SCHEMES = (
    "s3",
    "s3a",
    "s3n",
    "gs",
    "abfs",
    "abfss",
    "wasb",
    "wasbs",
    "adl",
    "hdfs",
    "viewfs",
    "dbfs",
    "file",
)
METASTORE_SCHEME = "metastore"
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Lake and metastore sources may be written without '//' (dbfs:/mnt/x, file:/data, metastore:main.churn); a
# one-letter scheme is a Windows drive, not a URL
_SHORT_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_METASTORE_NAME = re.compile(r"^metastore:([A-Za-z0-9_][A-Za-z0-9_-]*)(?:\.([A-Za-z0-9_][A-Za-z0-9_-]*))?$")
SourceKind = Literal["files", "database", "lake", "metastore"]


def source_kind(source: Path | SecretStr | str) -> SourceKind:
    """What a `data.source` value names: local files, a PostgreSQL database, a folder on a Hadoop-compatible
    file system (Spark), or a schema of a Spark metastore (Hive, Unity Catalog)."""
    if isinstance(source, Path):
        return "files"
    text = source.get_secret_value() if isinstance(source, SecretStr) else source
    m = _URL_SCHEME.match(text) or _SHORT_SCHEME.match(text)
    scheme = m.group(1).lower() if m else ""
    if scheme in DATABASE_SCHEMES:
        return "database"
    if scheme in LAKE_SCHEMES:
        return "lake"
    if scheme == METASTORE_SCHEME:
        return "metastore"
    return "files"


def metastore_schema(source: str) -> tuple[str, ...]:
    """The name parts of a `metastore:<catalog>.<schema>` (or `metastore:<schema>`) source."""
    m = _METASTORE_NAME.match(source)
    if m is None:
        raise ValueError(
            f"data.source {source!r}: write a metastore source as metastore:<catalog>.<schema> or "
            f"metastore:<schema> (letters, digits, _ and -), e.g. metastore:main.churn"
        )
    return tuple(p for p in m.groups() if p)


class DataConfig(_Section):
    """Where the input tables live and how fresh they must be."""

    source: Path | SecretStr = Field(
        Path("data/company"),
        description="Folder of Parquet/CSV files, a DuckDB file, or a PostgreSQL URL postgresql://user@host:port/db "
        "(a secret: shown with its password redacted; give the password in env PGPASSWORD or ~/.pgpass, not in "
        "the URL). Database tables are read in place: validation and features run as SQL on the server. With "
        "engine spark also a folder URL on a Hadoop-compatible file system (s3a://, abfss://, gs://, hdfs://, "
        "dbfs:/, file:///) or metastore:<catalog>.<schema> (tables <catalog>.<schema>.<table>: Hive, Unity "
        "Catalog, Delta), read and checked by Spark itself.",
    )
    db_schema: str | None = Field(
        None,
        description="Database sources: the schema holding the tables (default: the first schema of the "
        "connection's search_path, normally public).",
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$",
    )
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="Engine the features are computed on: duckdb (embedded), or spark (the active SparkSession, "
        "else a local one; needs the spark extra and Java). With spark the source is Parquet: a local folder "
        "(the contract checked by DuckDB reading the files), a folder URL or a metastore schema (the contract "
        "checked by Spark).",
    )
    oracle: Path | None = Field(
        None, description="Simulator ground truth (never read as input); enables oracle metrics."
    )
    max_staleness_days: int = Field(
        3, ge=0, description="Scoring fails when the newest event is older than this before the as-of date."
    )
    max_future_days: int = Field(
        1,
        ge=0,
        description="Validation fails on dates/timestamps later than this many days after today (or after "
        "--as-of when it is later).",
    )
    duplicate_rows_error_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Exact duplicate rows (all columns equal) in events, support_contacts, surveys or "
        "payments: above this share of a table an error, below it a warning.",
    )

    @field_validator("source", mode="before")
    @classmethod
    def _url_is_a_secret(cls, value: Any) -> Any:
        # Any str is a valid Path: a URL must be recognised before pydantic makes it one (and loses its '//').
        kind = source_kind(value) if isinstance(value, str) else None
        if kind not in (None, "files"):
            if kind == "metastore":
                metastore_schema(value)
            return SecretStr(value)
        if isinstance(value, str) and (m := _URL_SCHEME.match(value)):
            raise ValueError(
                f"data.source URL scheme {m.group(1)!r} is not supported: use a folder, a DuckDB file, a "
                f"postgresql:// URL, or with engine spark a folder URL ({', '.join(LAKE_SCHEMES)}) or "
                f"metastore:<catalog>.<schema>"
            )
        # Otherwise a path (pydantic's union would take any str as the SecretStr, its exact type).
        return Path(value) if isinstance(value, str) else value

    _dump_source = field_serializer("source", when_used="json")(
        lambda self, v: redact(v) if isinstance(v, SecretStr) else str(v)
    )

    @property
    def source_url(self) -> str | None:
        """The source URL (a database's, a folder's on a Hadoop-compatible file system, or metastore:...; a secret:
        never print it, `source_label` is safe), or None for local files."""
        return self.source.get_secret_value() if isinstance(self.source, SecretStr) else None

    @property
    def source_kind(self) -> SourceKind:
        """files (local), database (PostgreSQL), lake (a folder URL, Spark) or metastore (Spark)."""
        return source_kind(self.source)

    @property
    def source_label(self) -> str:
        """The source for messages, logs and manifests: the path, or the URL with its password redacted."""
        return redact(self.source) if isinstance(self.source, SecretStr) else str(self.source)


class LabelConfig(_Section):
    """What 'churned' means."""

    kind: Literal["cancellation", "inactivity"] = Field(
        "cancellation",
        description="cancellation: churn_date within the horizon; inactivity: no event within the horizon.",
    )
    horizon_days: int = Field(30, ge=1, le=730, description="Days after the as-of date a label looks at.")
    inactivity_lookback_days: int = Field(
        30,
        ge=1,
        description="inactivity kind: a customer counts as active at t with an event in this lookback.",
    )


class FeatureConfig(_Section):
    """Windows and per-type options of the behavioural features."""

    windows: tuple[int, ...] = Field(
        (7, 30, 90), description="Window lengths in days, ending at the as-of date."
    )
    important_event_types: tuple[str, ...] = Field(
        (), description="Event types that get their own recency feature (days since last <type>)."
    )
    event_types: tuple[str, ...] = Field((), description="Event types that get their own counts per window.")
    support_channels: tuple[str, ...] = Field(
        ("chat", "email", "phone"),
        description="Support channels that get their own contact counts per window.",
    )
    categorical_attributes: tuple[str, ...] = Field(
        (), description="Customer columns forced to categories (default: strings/booleans)."
    )
    numeric_attributes: tuple[str, ...] = Field(
        (), description="Customer columns forced to numbers (default: numeric dtypes)."
    )
    exclude_attributes: tuple[str, ...] = Field((), description="Customer columns never used as features.")
    frequency: bool | None = Field(
        None,
        description="The frequency family (visit counts and rates, gaps between visit days, overdue ratio) and "
        "the BG/NBD columns below. null = automatic: on for label.kind inactivity (non-contractual data, where "
        "visit regularity is the signal), off for cancellation (it doubles the feature build, measured 2.0 -> "
        "4.2 s at 200k customers, and did not raise the demo's cancellation AUC).",
    )
    btyd: bool = Field(
        True,
        description="BG/NBD features btyd_p_alive and btyd_expected_events (next label.horizon_days), fitted "
        "per as-of date; only when there is an events table.",
    )
    btyd_max_fit_customers: int = Field(
        100_000,
        ge=100,
        description="The BG/NBD fit uses a seeded random subsample of this many customers when there are more.",
    )

    @field_validator("windows")
    @classmethod
    def _windows_positive_sorted(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("at least one window is needed, e.g. [7, 30, 90]")
        if any(w < 1 for w in v):
            raise ValueError(f"windows must be positive day counts, got {list(v)}")
        if len(set(v)) != len(v):
            raise ValueError(f"windows must be distinct, got {list(v)}")
        return tuple(sorted(v))


class SnapshotConfig(_Section):
    """Rolling as-of dates of the training set; the latest is the last date whose label is fully observed."""

    count: int = Field(8, ge=1, le=200, description="Number of rolling as-of dates in the training set.")
    spacing_days: int = Field(14, ge=1, description="Days between consecutive snapshots.")


class TrackingConfig(_Section):
    """MLflow tracking and registry."""

    uri: str | None = Field(None, description="Tracking URI; default sqlite:///<workdir>/mlflow.db.")
    experiment: str = Field("churn", description="MLflow experiment of training and evaluation runs.")
    registered_model: str = Field(
        "churn-classifier", description="Registry name; the champion alias lives here."
    )


class LightGBMConfig(_Section):
    """LightGBM settings; `null` sizes a setting from the training rows (see `models.candidates.scaled_params`)."""

    num_leaves: int | None = Field(
        None,
        ge=2,
        description="Maximum leaves per tree; null = from the training positives (positives / 20, within 7..31).",
    )
    max_depth: int = Field(
        6,
        ge=-1,
        description="Tree depth limit (-1 = none). Scoring cost grows with depth, explanations with its "
        "square; 6 lost no accuracy on the demo.",
    )
    learning_rate: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Boosting learning rate. 0.1 matched 0.05 on out-of-time AUC over three test snapshots "
        "with half the trees (half the scoring and explanation time).",
    )
    n_estimators: int = Field(
        400, ge=1, description="Maximum boosting rounds (early stopping usually ends sooner)."
    )
    min_child_samples: int | None = Field(
        None,
        ge=1,
        description="Minimum customers in a leaf; null = from the training rows and positives "
        "(max(sqrt(rows) / 4, 2 x rows / positives), within 10..200).",
    )
    subsample: float = Field(0.8, gt=0, le=1, description="Share of rows sampled per tree.")
    colsample_bytree: float = Field(0.8, gt=0, le=1, description="Share of features sampled per tree.")
    reg_lambda: float = Field(1.0, ge=0, description="L2 regularisation.")
    early_stopping_rounds: int = Field(
        30, ge=1, description="Stop after this many rounds without validation gain."
    )
    num_threads: int = Field(
        0,
        ge=0,
        description="LightGBM threads; 0 = automatic: 1 below 50,000 training rows (where threads cost more "
        "than they save), else every core.",
    )


class TuningConfig(_Section):
    """Optuna search over LightGBM settings (the logistic model's C is always chosen on validation)."""

    trials: int = Field(
        20,
        ge=0,
        description="Optuna (TPE, seeded, one job) trials over LightGBM settings; trial 0 is the configured/sized "
        "settings, so tuning never ends worse on validation. 0 = off. Same data + seed + trials = same model "
        "when the trial budget ends the search before `seconds` does.",
    )
    seconds: float = Field(
        60.0,
        gt=0,
        description="Time limit of the search (checked between trials; when it binds first, the result "
        "depends on the machine's speed).",
    )
    max_rows: int = Field(
        50_000,
        ge=0,
        description="Tune only when the development (non-test) rows are at most this many: with more data the "
        "sized settings do well and each trial costs seconds. 0 = no limit.",
    )


class ModelConfig(_Section):
    """Candidates, split (out-of-time, or cross-validation for a single snapshot), calibration, promotion."""

    candidates: tuple[str, ...] = Field(
        ("lightgbm", "logistic", "blend"),
        description="Candidate models (models/candidates.py: lightgbm, logistic, blend); the best on validation "
        "by promotion_metric is registered (ties: the first listed).",
    )
    selection_margin: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="A candidate listed later is chosen only when it beats the earlier ones on validation by "
        "more than this share of their promotion_metric (near-ties go to the simpler, cheaper model).",
    )
    test_snapshots: int = Field(1, ge=1, description="Latest snapshots held out as the test set.")
    valid_snapshots: int = Field(
        1, ge=1, description="Snapshots before the test ones, for selection, early stopping and calibration."
    )
    gap_snapshots: int = Field(
        0,
        ge=0,
        description="Snapshots left out between training and validation, so training labels (which look "
        "horizon_days ahead) end before the held-out dates; 0 = none.",
    )
    valid_customers_pct: float = Field(
        25.0,
        ge=0,
        lt=100,
        description="Out-of-time splits: this share of customers (by a hash of customer_id) is left out of the "
        "training snapshots and validates on the validation snapshots, so early stopping and selection judge "
        "customers the fit has not seen; calibration and the list size use every validation row; the refit "
        "uses everyone. 0 = every customer.",
    )
    valid_rotation_max_rows: int = Field(
        50_000,
        ge=0,
        description="Out-of-time splits with at most this many train + validation rows validate every customer "
        "group in turn (ceil(100 / valid_customers_pct) folds, 4 at 25%): selection, early stopping, tuning and "
        "calibration then judge the whole validation snapshot, not a quarter of it. Larger sets validate one "
        "group (one fit per trial). 0 = never.",
    )
    cv_folds: int = Field(
        5,
        ge=2,
        le=20,
        description="Single-snapshot training sets: customer-grouped, stratified folds over the non-test rows "
        "(selection, early stopping, out-of-fold calibration) before the refit on all of them.",
    )
    final_fit: Literal["all", "development"] = Field(
        "all",
        description="Rows of the registered model's last fit, with the settings chosen on the development rows: "
        "'all' adds the test rows (the latest labelled snapshot, the closest to the dates it will score; the "
        "test metrics are then those of the development fit, a slightly conservative estimate), "
        "'development' registers exactly the model the test metrics describe.",
    )
    max_training_rows: int = Field(
        1_000_000,
        ge=0,
        description="Out-of-time splits: when train + validation exceed this many rows, every churner is kept and "
        "non-churners are sampled at the rate that fits the budget, by a hash of (customer_id, snapshot_date, "
        "seed); validation and test are scored whole and calibration corrects the base rate; 0 = no limit.",
    )
    lightgbm: LightGBMConfig = LightGBMConfig()
    tuning: TuningConfig = TuningConfig()
    calibration: Literal["isotonic", "sigmoid"] = Field(
        "isotonic",
        description="Probability calibration fitted on validation (or out-of-fold) predictions (sigmoid = Platt).",
    )
    promotion_metric: Literal["roc_auc", "pr_auc", "brier", "log_loss", "top_decile_lift"] = Field(
        "pr_auc",
        description="Metric that chooses the candidate (validation), tunes it, and that a new version must "
        "beat the champion on (same test snapshots) to be promoted.",
    )
    seed: int = Field(42, description="Seed of training, folds and search (same data + seed = same model).")

    @field_validator("candidates")
    @classmethod
    def _candidates_listed(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one candidate is needed, e.g. [lightgbm, logistic, blend]")
        if len(set(v)) != len(v):
            raise ValueError(f"candidates must be distinct, got {list(v)}")
        return v


class EvaluationConfig(_Section):
    """List size and campaign economics."""

    list_size_pct: float = Field(
        10.0, gt=0, le=100, description="Precision/recall are reported at this top-k%."
    )
    customer_value: float = Field(600.0, ge=0, description="Average value kept when a churner is retained.")
    offer_cost: float = Field(25.0, ge=0, description="Cost of contacting one customer with an offer.")
    offer_acceptance: float = Field(
        0.3, ge=0, le=1, description="Share of contacted churners the offer retains."
    )


class TierConfig(_Section):
    name: str
    top_pct: float = Field(
        ..., gt=0, le=100, description="Listed customers within this top-% of the at-risk list get the tier."
    )


class DriftConfig(_Section):
    warn_psi: float = Field(
        0.1, ge=0, description="A feature's PSI vs the training reference above this warns."
    )
    fail_psi: float = Field(0.25, ge=0, description="Above this scoring fails and publishes nothing.")
    trending: Literal["warn", "fail"] = Field(
        "warn",
        description="Features that already moved by more than warn_psi between the first and the last labelled "
        "snapshot of the training set trend with time on their own (a tenure in a closed cohort): 'warn' reports "
        "their drift as a warning, 'fail' gates them like every other feature.",
    )

    @model_validator(mode="after")
    def _warn_below_fail(self) -> DriftConfig:
        if self.warn_psi > self.fail_psi:
            raise ValueError(f"warn_psi ({self.warn_psi}) must not exceed fail_psi ({self.fail_psi})")
        return self


class ScoringConfig(_Section):
    """Nightly scoring and the at-risk list."""

    model_version: str | None = Field(
        None, description="Registry version to score with; default the champion alias."
    )
    list_size: Literal["profit"] | float = Field(
        "profit", description="'profit' = profit-optimal k from evaluation, or a top-% of active customers."
    )
    tiers: tuple[TierConfig, ...] = Field(
        (
            TierConfig(name="critical", top_pct=20.0),
            TierConfig(name="high", top_pct=50.0),
            TierConfig(name="elevated", top_pct=100.0),
        ),
        description="Risk tiers by top-% of the at-risk list (not of all customers, so a 1% list still has "
        "its riskiest fifth marked critical), smallest first.",
    )
    value_column: str | None = Field(
        None,
        description="Customer attribute giving monthly value (e.g. monthly_fee); default customer_value.",
    )
    value_months: float = Field(12.0, gt=0, description="Months of value at risk when value_column is used.")
    attribution: Literal["path", "treeshap"] = Field(
        "path",
        description="Contributions behind the reasons: 'path' (fast, the customer's own tree paths) or "
        "'treeshap' (exact Shapley values, ~15x slower).",
    )
    drift: DriftConfig = DriftConfig()
    actions: dict[str, str] = Field(
        default_factory=lambda: {
            "complaints": "Priority support callback",
            "support": "Proactive support check-in",
            "activity": "Re-engagement message",
            "recency": "Re-engagement message",
            "frequency": "Re-engagement message",
            "payments": "Billing outreach",
            "price": "Loyalty offer",
            "surveys": "Account manager follow-up",
            "attributes": "Contract upgrade offer",
        },
        description="Reason family -> suggested retention action.",
    )
    default_action: str = Field(
        "Retention review", description="Action when no mapped reason family applies."
    )
    control_pct: float = Field(
        10.0,
        ge=0,
        lt=100,
        description="Share (%) of each tier of the at-risk list held out as a control group (group=control: "
        "the CRM leaves them alone, so a campaign's effect can be measured); 0 = no control group.",
    )
    rank_by: Literal["risk", "saved_value"] = Field(
        "risk",
        description="Order of the list: 'risk' (P(churn)) or 'saved_value' (uplift x value: the value a contact is "
        "expected to save; needs a `churn train-uplift` champion, and lists only customers with a positive one).",
    )
    control_seed: int = Field(
        0,
        ge=0,
        description="Seed of the control assignment (a hash of customer_id and this seed): the same customers "
        "are drawn whenever they are listed; change it to draw a new control group.",
    )

    @field_validator("list_size")
    @classmethod
    def _pct_range(cls, v: str | float) -> str | float:
        if not isinstance(v, str) and not 0 < v <= 100:
            raise ValueError(f"list_size must be 'profit' or a percentage in (0, 100], got {v}")
        return v

    @field_validator("tiers")
    @classmethod
    def _tiers_sorted(cls, v: tuple[TierConfig, ...]) -> tuple[TierConfig, ...]:
        pcts = [t.top_pct for t in v]
        if pcts != sorted(pcts) or len(set(pcts)) != len(pcts):
            raise ValueError(
                f"tiers must be listed from the smallest top_pct up, strictly increasing; got {pcts}"
            )
        return v


class KpiConfig(_Section):
    """`churn kpis`: retention and service KPIs per calendar period and customer segment."""

    period: Literal["month", "week"] = Field(
        "month", description="Period of the KPIs: calendar months, or ISO weeks (Monday to Sunday)."
    )
    periods: int = Field(
        12,
        ge=1,
        le=520,
        description="How many of the latest complete periods (ending on or before the last date in the data) "
        "are reported.",
    )
    segments: tuple[str, ...] = Field(
        (),
        description="Categorical customer columns (e.g. plan, region) the KPIs are also broken down by, each on "
        "its own; every period always has the segment 'all'.",
    )
    margin_pct: float = Field(
        100.0,
        gt=0,
        le=100,
        description="Gross margin in percent of the monthly value, for the CLV estimate (100 = revenue, not margin).",
    )
    clv_hazard_periods: int = Field(
        3,
        ge=1,
        le=60,
        description="CLV: the churn hazard is the customers lost over the customers at start summed over this "
        "many periods up to the reported one.",
    )
    clv_max_months: float = Field(
        120.0, gt=0, description="CLV: cap on the expected remaining lifetime (a segment that lost nobody)."
    )

    @field_validator("segments")
    @classmethod
    def _segments_distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"segments must be distinct, got {list(v)}")
        reserved = {"customer_id", "signup_date", "churn_date"} & set(v)
        if reserved:
            raise ValueError(f"segments must be customer attributes, not {sorted(reserved)}")
        return v


# -- secrets ------------------------------------------------------------------------------------------------
REDACTED = "***"
# scheme://user:password@ -> scheme://user:***@ (a URL or a postgres URL DSN)
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*):[^\s@/]*@")
# http(s)://token@host: a bare user part of a web URL is a credential (e.g. a token), not a login name
_WEB_USER = re.compile(r"(?P<head>\bhttps?://)[^\s:/?#@]+@", re.IGNORECASE)
# ?key=value / &key=value: every query value may be a token (token=, api_key=, sig=, password= ...)
_QUERY_VALUE = re.compile(r"(?P<head>[?&][^\s=&#?]+=)[^\s&#'\"]+")
# libpq key=value DSNs: password=secret or password='a secret'
_LIBPQ_PASSWORD = re.compile(
    r"(?P<head>(?<![\w.])(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'&]+)", re.IGNORECASE
)


def redact(text: str | SecretStr | None) -> str:
    """`text` with every credential it may hold replaced by `***`: passwords in URL userinfo, query-string
    values, libpq `password=`. The one redaction used for logs, messages, MLflow params and manifests."""
    if text is None:
        return ""
    if isinstance(text, SecretStr):
        text = text.get_secret_value()
    text = _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", str(text))
    text = _WEB_USER.sub(rf"\g<head>{REDACTED}@", text)
    text = _QUERY_VALUE.sub(rf"\g<head>{REDACTED}", text)
    return _LIBPQ_PASSWORD.sub(rf"\g<head>{REDACTED}", text)


def _redacted(value: SecretStr | None) -> str | None:
    # JSON dumps (MLflow params, the logged config.yaml, manifests) show where a secret points, never the secret
    return None if value is None else redact(value)


class WebhookConfig(_Section):
    """Settings of the `webhook` export target."""

    url: SecretStr | None = Field(
        None,
        description="Endpoint (a secret: may carry a token; shown redacted); env CHURN_WEBHOOK_URL overrides.",
    )
    batch_size: int = Field(500, ge=1, description="Records per POST.")
    max_retries: int = Field(
        5, ge=0, description="Retries of a batch on 5xx, 408/429, timeouts, connection errors."
    )
    backoff_seconds: float = Field(0.5, ge=0, description="First retry delay; doubles on each retry.")
    timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout.")
    auth_header: str | None = Field(
        None,
        description="Name of an env variable holding an Authorization header value (the value never enters "
        "the config).",
    )

    _dump_url = field_serializer("url", when_used="json")(lambda self, v: _redacted(v))


class PostgresConfig(_Section):
    """Settings of the `postgres` export target."""

    dsn: SecretStr | None = Field(
        None,
        description="libpq DSN or postgresql:// URL (a secret: shown with its password redacted); env "
        "CHURN_PG_DSN overrides.",
    )
    table: str = Field(
        "churn_at_risk",
        description="Target table (optionally schema.table), created if missing.",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$",
    )

    _dump_dsn = field_serializer("dsn", when_used="json")(lambda self, v: _redacted(v))


class ExportConfig(_Section):
    """Settings of the export targets: one section per target that has settings, named by the target's
    `config_field` (see churn_pipeline.stages.export); `out_dir` is shared by the file targets."""

    out_dir: Path | None = Field(None, description="Where csv/jsonl exports go; default <workdir>/exports.")
    webhook: WebhookConfig = WebhookConfig()
    postgres: PostgresConfig = PostgresConfig()


class NoiseConfig(_Section):
    """Noise added to a simulated company, for benchmarks on harder data. All off by default (the output is
    then byte-identical to a simulation without this section)."""

    label_flip_pct: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Percent of customers whose written churn_date is a coin flip, not their behaviour: a "
        "churner among them gets none (rows still stop), a non-churner gets one uniform over their time.",
    )
    attribute_noise_pct: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Percent of each written customer attribute's values replaced by a random customer's "
        "value (behaviour follows the true ones).",
    )
    irrelevant_attributes: int = Field(
        0,
        ge=0,
        le=50,
        description="Extra customer columns of pure noise (noise_1, noise_2, ...: numbers and categories "
        "alternating).",
    )


WEBHOOK_URL_ENV = "CHURN_WEBHOOK_URL"
PG_DSN_ENV = "CHURN_PG_DSN"


class ExportSecrets(BaseSettings):
    """Secrets from the environment, read when an export runs; they override the config's values."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True)

    webhook_url: SecretStr | None = Field(None, validation_alias=WEBHOOK_URL_ENV)
    pg_dsn: SecretStr | None = Field(None, validation_alias=PG_DSN_ENV)


def export_secrets() -> ExportSecrets:
    """The export secrets set in the environment now (empty variables count as unset)."""
    env = ExportSecrets()
    return env.model_copy(
        update={k: None for k, v in env if v is not None and not v.get_secret_value().strip()}
    )


def public_config(cfg: Config) -> dict[str, Any]:
    """The config as JSON-ready data with every secret redacted (secret fields, and credentials inside any
    other string such as a tracking URI with a password): what MLflow params and the logged config.yaml get."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return redact(value) if isinstance(value, str) else value

    return walk(cfg.model_dump(mode="json"))


class CampaignSimulationConfig(_Section):
    """Retention campaigns the simulated company runs on its own at-risk lists, with a known true effect."""

    every_weeks: int = Field(
        0, ge=0, description="A campaign every this many weeks (0 = none: no campaigns table is written)."
    )
    first_month: int = Field(6, ge=1, description="Month of the period the first campaign runs in.")
    target_pct: float = Field(
        5.0,
        gt=0,
        le=50,
        description="Top % of the customers at risk (by the simulator's own noisy risk) targeted.",
    )
    control_pct: float = Field(
        50.0, gt=0, lt=100, description="Share (%) of the targets held out, at random."
    )
    effect_weeks: int = Field(
        4,
        ge=1,
        le=26,
        description="Weeks a contact changes the customer's churn hazard (and the truth's horizon).",
    )
    persuadable_multiplier: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Hazard multiplier of a contacted persuadable customer (0.3 = 70% lower).",
    )
    annoyed_multiplier: float = Field(
        1.6,
        ge=1,
        description="Hazard multiplier of a contacted 'sleeping dog' (contact reminds them to leave).",
    )


class SimulationConfig(_Section):
    """The built-in company simulator (demo, tests, benchmarks)."""

    customers: int = Field(20_000, ge=10, description="Customers simulated (initial base plus acquisitions).")
    months: int = Field(24, ge=3, le=120, description="Length of the simulated period.")
    start_date: dt.date = Field(dt.date(2024, 1, 1), description="First day of the simulated period.")
    seed: int = Field(7, description="Same seed and config give byte-identical files.")
    target_monthly_churn: tuple[float, float] = Field(
        (0.015, 0.05), description="Band the simulated monthly churn rate is calibrated into."
    )
    chunk_customers: int = Field(100_000, ge=1_000, description="Customers simulated and written per chunk.")
    contract: Literal["subscription", "non_contractual"] = Field(
        "subscription",
        description="subscription: cancellations are written as churn_date. non_contractual: customers drop "
        "out silently (no churn_date, no payments table, `contract` becomes `membership`); use label.kind "
        "inactivity.",
    )
    noise: NoiseConfig = NoiseConfig()
    campaigns: CampaignSimulationConfig = CampaignSimulationConfig()

    @model_validator(mode="after")
    def _campaigns_fit(self) -> SimulationConfig:
        if self.campaigns.every_weeks and self.campaigns.first_month >= self.months:
            raise ValueError(
                f"campaigns.first_month ({self.campaigns.first_month}) must be before the end of the simulated "
                f"period (months: {self.months})"
            )
        return self

    @model_validator(mode="after")
    def _flips_need_cancellations(self) -> SimulationConfig:
        if self.contract == "non_contractual" and self.noise.label_flip_pct > 0:
            raise ValueError(
                "noise.label_flip_pct flips written cancellations; a non_contractual company writes none: "
                "set it to 0 or use contract: subscription"
            )
        return self

    @field_validator("target_monthly_churn")
    @classmethod
    def _band(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0 < lo < hi < 1:
            raise ValueError(
                f"target_monthly_churn must be [low, high] with 0 < low < high < 1, got {list(v)}"
            )
        return v


class Config(_Section):
    """The whole pipeline configuration."""

    workdir: Path = Field(Path(".churn"), description="Training sets, scores, exports and the MLflow store.")
    data: DataConfig = DataConfig()
    label: LabelConfig = LabelConfig()
    features: FeatureConfig = FeatureConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    tracking: TrackingConfig = TrackingConfig()
    model: ModelConfig = ModelConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    scoring: ScoringConfig = ScoringConfig()
    export: ExportConfig = ExportConfig()
    kpis: KpiConfig = KpiConfig()
    simulation: SimulationConfig = SimulationConfig()

    @model_validator(mode="after")
    def _resolve_automatic_features(self) -> Config:
        # features.frequency: null follows the label kind (the feature layer alone cannot see it)
        if self.features.frequency is None:
            resolved = self.features.model_copy(update={"frequency": self.label.kind == "inactivity"})
            object.__setattr__(self, "features", resolved)
        return self

    @property
    def tracking_uri(self) -> str:
        """The configured MLflow URI, or a SQLite store inside the working directory."""
        if self.tracking.uri:
            return self.tracking.uri
        return f"sqlite:///{(self.workdir / 'mlflow.db').resolve()}"

    @property
    def export_dir(self) -> Path:
        return self.export.out_dir or self.workdir / "exports"

    def with_overrides(
        self, *, data: Path | str | None = None, out: Path | None = None, engine: str | None = None
    ) -> Config:
        """A copy with the common CLI overrides applied (`--data`: a path or a database URL, `--out` = working
        directory, `--engine`: duckdb or spark), each validated as the config file's value would be."""
        update: dict = {}
        data_update: dict = {}
        if data is not None:
            try:
                data_update["source"] = DataConfig.model_validate({"source": data}).source
            except ValidationError as e:
                raise ConfigError(f"--data: {e.errors()[0]['msg']}") from None
        if engine is not None:
            try:
                data_update["engine"] = DataConfig.model_validate({"engine": engine}).engine
            except ValidationError as e:
                raise ConfigError(f"--engine {engine!r}: {e.errors()[0]['msg']}") from None
        if data_update:
            update["data"] = self.data.model_copy(update=data_update)
        if out is not None:
            update["workdir"] = out
        return self.model_copy(update=update) if update else self


def _format_validation_error(path: Path, err: ValidationError) -> str:
    lines = [f"invalid config {path}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(
                f"  - unknown key '{key}': remove it or check its spelling (see README, Config reference)"
            )
        else:
            lines.append(f"  - {key}: {e['msg']} (got {redact(repr(e.get('input')))})")
    return "\n".join(lines)


def load_config(path: Path | str | None = None) -> Config:
    """Load and validate a YAML config; `None` gives the built-in defaults."""
    if path is None:
        return Config()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found: pass --config with an existing YAML file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        # the parser quotes the offending line, which may hold a secret
        raise ConfigError(f"config file {path} is not valid YAML: {redact(str(e))}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(path, e)) from None  # pydantic repeats inputs: secrets


def config_reference() -> str:
    """The Markdown table of every config key, its default and meaning (the README embeds it verbatim)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{key}.")
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, tuple) and default and isinstance(default[0], BaseModel):
                default = [d.model_dump() for d in default]
            elif isinstance(default, tuple):
                default = list(default)
            shown = "`null`" if default is None else f"`{json.dumps(default, default=str)}`"
            if isinstance(default, dict) and len(shown) > 60:
                shown = "see `configs/default.yaml`"
            rows.append(f"| `{key}` | {shown} | {(field.description or '').replace('|', '/')} |")

    walk(Config, "")
    return "\n".join(rows)


if __name__ == "__main__":  # `python -m churn_pipeline.core.config` prints the README's Config reference
    print(config_reference())
