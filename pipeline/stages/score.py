"""Nightly scoring: active customers as of a date -> full scores table, at-risk list with reasons, manifest.

The run is all-or-nothing. Checks come first (contract validation, staleness, drift) and raise before
anything is written; the three outputs are written into a temporary directory next to
`<workdir>/scores/as_of=YYYY-MM-DD/` that replaces it whole only when complete. Re-running a date replaces
that date's outputs, and the same inputs give byte-identical Parquet files (no wall-clock time inside
them; timings live in the manifest only).

`run_scoring` reads the inputs, calls the pure steps below (ranking, list size, tiers, the at-risk list, the
manifest) and the checks (`score_checks`), and publishes (`publish`). With `data.engine: spark` the features,
the predictions, the ranking and the drift counts stay on Spark (`score_spark`); the list is built with the
same steps.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa

from churn_pipeline.core.artifacts import (
    AT_RISK_COLUMNS,
    CONTROL,
    SCORES_COLUMNS,
    TREATMENT,
    score_dir,
    uplift_model_name,
)
from churn_pipeline.core.config import Config, ScoringConfig, TierConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.progress import Steps
from churn_pipeline.data.io import Source, open_source
from churn_pipeline.features.labels import labelled_customers
from churn_pipeline.models.churn_model import ChurnModel
from churn_pipeline.models.drift import population_stability, reference_trend
from churn_pipeline.models.evaluate import top_k_count
from churn_pipeline.models.reasons import reasons_and_actions
from churn_pipeline.models.registry import load_model
from churn_pipeline.models.uplift import UpliftModel
from churn_pipeline.stages.publish import (
    STALE_PUBLISH_MARGIN_SECONDS,
    ScoresWriter,
    publish_outputs,
    remove_stale_publish_dirs,
)
from churn_pipeline.stages.score_checks import (
    check_drift,
    check_model_features,
    check_outputs,
    check_staleness,
)
from churn_pipeline.stages.score_manifest import (
    Checks,
    Counts,
    DataInfo,
    DriftCheck,
    ListSize,
    ModelInfo,
    ScoringManifest,
    StalenessCheck,
    ValidationCheck,
    ValueAtRisk,
)
from churn_pipeline.stages.training_set import compute_features

log = logging.getLogger(__name__)


@dataclass
class ScoringResult:
    """The published outputs of one scoring run (frames as written) and its manifest."""

    as_of: dt.date
    model_name: str
    model_version: str
    out_dir: Path
    scores: pd.DataFrame | None  # None on Spark: the full table never comes to the driver (read out_dir)
    at_risk: pd.DataFrame
    manifest: ScoringManifest  # as written to manifest.json
    psi: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    drift_warnings: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # every step, including writing the outputs


# ------------------------------------------------------------------------------------------ pure pieces


def date_column(as_of: dt.date, n: int) -> pd.arrays.ArrowExtensionArray:
    """`n` copies of `as_of` as an Arrow date32 column (a Parquet DATE, not a timestamp)."""
    return pd.arrays.ArrowExtensionArray(pa.array(np.full(n, np.datetime64(as_of, "D"))))


def rank_scores(
    customer_ids: pd.Series,
    probability: np.ndarray,
    as_of: dt.date,
    model_version: str,
    uplift: np.ndarray | None = None,
    saved_value: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every scored customer ranked: by probability descending (ties by customer_id), or, when `saved_value`
    is given (scoring.rank_by: saved_value), by expected saved value descending (unknown last), then
    probability, then customer_id. Rank 1.. and percentile.

    `percentile` is the share of scored customers at or below this rank, in percent: 100 for the first.
    The index holds each row's position in the input, so callers can line other per-customer data up.
    """
    n = len(customer_ids)
    missing = np.full(n, np.nan)
    frame = pd.DataFrame(
        {
            "customer_id": customer_ids.to_numpy(),
            "churn_probability": np.asarray(probability, dtype=np.float64),
            "uplift": missing if uplift is None else np.asarray(uplift, dtype=np.float64),
            "expected_saved_value": missing
            if saved_value is None
            else np.asarray(saved_value, dtype=np.float64),
        }
    )
    keys = ["churn_probability", "customer_id"]
    if saved_value is not None:
        keys.insert(0, "expected_saved_value")
    frame = frame.sort_values(keys, ascending=[False] * (len(keys) - 1) + [True], kind="mergesort")
    n = len(frame)
    rank = np.arange(1, n + 1, dtype=np.int64)
    frame["rank"] = rank
    frame["percentile"] = 100.0 * (n - rank + 1) / max(n, 1)
    frame["as_of"] = date_column(as_of, n)
    frame["model_version"] = str(model_version)
    return frame[list(SCORES_COLUMNS)]


def list_size_pct(cfg: ScoringConfig, metadata: dict, fallback_pct: float) -> tuple[float, str]:
    """Top-% of active customers on the at-risk list and where the figure comes from."""
    if cfg.list_size != "profit":
        return float(cfg.list_size), "scoring.list_size"
    pct = metadata.get("optimal_list_pct")
    if pct is None or not 0 < float(pct) <= 100:
        log.warning("model metadata has no usable optimal_list_pct (%r); using evaluation.list_size_pct", pct)
        return float(fallback_pct), "evaluation.list_size_pct (the model has no profit-optimal k)"
    chosen_on = metadata.get("optimal_list_origin") or "profit-optimal k of the model's evaluation"
    return float(pct), f"{chosen_on} (scoring.list_size: profit)"


def risk_tiers(rank: np.ndarray, list_size: int, tiers: tuple[TierConfig, ...]) -> np.ndarray:
    """Tier name per rank: the first tier whose top-% of the `list_size` listed customers holds the rank
    (None beyond all tiers). Shares of the list, not of every customer, so a small list still has tiers."""
    cutoffs = np.array([top_k_count(list_size, t.top_pct) for t in tiers], dtype=np.int64)
    names = np.array([t.name for t in tiers] + [None], dtype=object)
    return names[np.searchsorted(cutoffs, np.asarray(rank), side="left")]


def control_group(customer_ids: pd.Series, tiers: np.ndarray, control_pct: float, seed: int) -> np.ndarray:
    """`control` or `treatment` per listed customer: in each tier, the round(control_pct% x tier size)
    customers with the lowest hash of (customer_id, seed) are held out.

    Seeded and random with respect to risk (a keyed SipHash of the id), exact per tier (stratified), and
    stable: the same ids and tiers give the same groups on every rerun, and a customer with a low hash is
    drawn whenever listed, so last night's control is rarely contacted tonight. Never changes who is listed.
    """
    n = len(customer_ids)
    if n == 0 or control_pct <= 0:
        return np.full(n, TREATMENT, dtype=object)
    key = f"{seed:016d}"[-16:]  # hash_array's 16-character key
    draw = pd.util.hash_array(customer_ids.astype(str).to_numpy(dtype=object), hash_key=key)
    frame = pd.DataFrame({"tier": pd.Series(tiers, dtype=object).fillna(""), "draw": draw})
    order = frame.groupby("tier", sort=False)["draw"].rank(method="first").to_numpy()
    size = frame.groupby("tier", sort=False)["draw"].transform("size").to_numpy()
    held_out = np.floor(size * control_pct / 100.0 + 0.5)  # round half up: 10% of 5 is 1
    return np.where(order <= held_out, CONTROL, TREATMENT).astype(object)


def customer_value(customers: pd.DataFrame, ids: pd.Series, cfg: Config) -> tuple[np.ndarray, str]:
    """Value kept if each customer is retained, and where it comes from."""
    sc = cfg.scoring
    if sc.value_column is None:
        return np.full(len(ids), cfg.evaluation.customer_value, dtype=np.float64), "evaluation.customer_value"
    monthly = customers.set_index("customer_id")[sc.value_column]
    values = pd.to_numeric(monthly.reindex(ids.to_numpy()), errors="coerce").to_numpy(dtype=np.float64)
    return values * sc.value_months, f"customers.{sc.value_column} x {sc.value_months:g} months"


def list_size(n_scored: int, cfg: Config, metadata: dict) -> ListSize:
    """The at-risk list's share of the `n_scored` customers, its length and where the share comes from."""
    pct, origin = list_size_pct(cfg.scoring, metadata, cfg.evaluation.list_size_pct)
    return ListSize(pct=pct, customers=top_k_count(n_scored, pct), origin=origin)


def listed_rows(scores: pd.DataFrame, size: ListSize, rank_by: str) -> tuple[pd.DataFrame, ListSize]:
    """The top rows of the ranked scores that make the at-risk list, and the list size as published.

    Ranked by saved value, the list stops where the expected saved value stops being positive: a contact
    expected to save nothing, or to make a customer likelier to leave, is not a retention action.
    """
    top = scores.iloc[: size.customers]
    if rank_by != "saved_value":
        return top, size
    positive = top[top["expected_saved_value"] > 0]
    if len(positive) == len(top):
        return top, size
    origin = f"{size.origin}; {len(top) - len(positive)} without a positive expected saved value left off"
    return positive, ListSize(pct=size.pct, customers=len(positive), origin=origin)


def at_risk_list(
    top: pd.DataFrame, reasons: pd.DataFrame, value: np.ndarray, cfg: ScoringConfig
) -> pd.DataFrame:
    """The at-risk list from the top rows of the scores (`rank_scores` order), their reasons and values.

    `reasons` holds `reason_1..3` and `suggested_action` per listed customer, in list order; `value` is what
    each keeps if retained, so the expected value at risk is probability x value. Tiers and the control group
    (`scoring.control_pct` of each tier) come from `cfg`.
    """
    k = len(top)
    probability = top["churn_probability"].to_numpy()
    tiers = risk_tiers(top["rank"].to_numpy(), k, cfg.tiers)
    at_risk = pd.DataFrame(
        {
            "customer_id": top["customer_id"].to_numpy(),
            "churn_probability": probability,
            "risk_tier": tiers,
            "group": control_group(top["customer_id"], tiers, cfg.control_pct, cfg.control_seed),
            "expected_value_at_risk": probability * value,
            "uplift": top["uplift"].to_numpy(),
            "expected_saved_value": top["expected_saved_value"].to_numpy(),
        }
    )
    for col in reasons.columns:
        at_risk[col] = reasons[col].to_numpy()
    at_risk["rank"] = top["rank"].to_numpy()
    at_risk["as_of"] = top["as_of"].array
    at_risk["model_version"] = top["model_version"].to_numpy()
    return at_risk[list(AT_RISK_COLUMNS)]


def run_counts(n_scored: int, mean_probability: float, at_risk: pd.DataFrame) -> Counts:
    """Customers scored (`n_scored`, their mean probability) and listed, listed per tier (largest tier first;
    "None" for those beyond every tier)."""
    by_tier = at_risk["risk_tier"].value_counts(dropna=False)
    return Counts(
        active_scored=int(n_scored),
        at_risk=len(at_risk),
        by_tier={str(t): int(c) for t, c in by_tier.items()},
        control=int((at_risk["group"] == CONTROL).sum()),
        mean_probability_scored=float(mean_probability),
    )


def value_at_risk(at_risk: pd.DataFrame, origin: str) -> ValueAtRisk:
    """The list's total expected value at risk (customers without a value left out) and where values come from."""
    total = float(np.nansum(at_risk["expected_value_at_risk"]))
    return ValueAtRisk(origin=origin, total_expected_value_at_risk=total)


# ---------------------------------------------------------------------------------------------- the run


STEPS = ["open and validate data", "staleness check", "load model", "features", "drift check", "predict",
          "reasons", "checks", "write outputs"]  # fmt: skip


def run_scoring(
    cfg: Config, as_of: dt.date | None = None, model_version: str | None = None, *, progress: bool = False
) -> ScoringResult:
    """Score every customer active at `as_of` (default: the data's last date) and publish the outputs."""
    started = time.time()
    steps = Steps(total=len(STEPS), progress=progress, title="scoring")
    try:
        return _score_and_publish(cfg, as_of, model_version, steps, started)
    finally:
        steps.close()


def _score_and_publish(
    cfg: Config, as_of: dt.date | None, model_version: str | None, steps: Steps, started: float
) -> ScoringResult:
    requested = model_version or cfg.scoring.model_version
    if cfg.data.engine == "spark" and cfg.scoring.rank_by == "saved_value":
        raise ConfigError(
            "scoring.rank_by: saved_value runs on the DuckDB engine only so far: score with --engine duckdb, "
            "or rank by risk on Spark (scoring.rank_by: risk)"
        )
    with steps.step("open and validate data"):
        source = validated_source(cfg, as_of)
    as_of = as_of or source.data_end_date
    with steps.step("staleness check"):
        staleness = check_staleness(source, as_of, cfg.data.max_staleness_days)
    with steps.step("load model"):
        model, version = load_model(cfg.tracking_uri, cfg.tracking.registered_model, requested)
        uplift_model = load_uplift_model(cfg) if cfg.scoring.rank_by == "saved_value" else None
    run = RunContext(
        cfg, source, as_of, model, str(version), requested, staleness, steps, started, uplift_model
    )
    if source.engine == "spark":
        from churn_pipeline.stages.score_spark import score_on_spark  # pyspark is an optional extra

        return score_on_spark(run)
    customers = customer_table(source, cfg.scoring.value_column)
    with steps.step("features"):
        features = scoring_features(cfg, source, as_of)
    produced = [c for c in features.columns if c != "customer_id"]
    check_model_features(
        model.feature_names, produced, cfg.features, f"model {cfg.tracking.registered_model} v{version}"
    )
    if uplift_model is not None:
        check_model_features(uplift_model[0].feature_names, produced, cfg.features,
                             f"uplift model {uplift_model_name(cfg.tracking.registered_model)} v{uplift_model[1]}")  # fmt: skip
    with steps.step("drift check"):
        psi = feature_psi(model, features)
        drift = check_drift(psi, cfg.scoring.drift, reference_trend(model.reference))
    with steps.step("predict"):
        probability = np.asarray(model.predict(None, features), dtype=np.float64)
        uplift, saved = (
            (None, None) if uplift_model is None else saved_value(uplift_model[0], features, customers, cfg)
        )
        scores = rank_scores(features["customer_id"], probability, as_of, version, uplift, saved)
    size = list_size(len(scores), cfg, model.metadata)
    with steps.step("reasons"):
        top, size = listed_rows(scores, size, cfg.scoring.rank_by)
        reasons = listed_reasons(model, features, top, cfg.scoring)
        value, value_origin = customer_value(customers, top["customer_id"], cfg)
        at_risk = at_risk_list(top, reasons, value, cfg.scoring)
    with steps.step("checks"):
        check_outputs(scores, at_risk, customers, as_of)
    counts = run_counts(len(scores), scores["churn_probability"].mean(), at_risk)
    manifest = run.manifest(counts, size, value_at_risk(at_risk, value_origin), drift)
    return publish_run(run, scores, at_risk, manifest, psi)


@dataclass(frozen=True)
class RunContext:
    """What a scoring run knows once its data and model are open: the engines' common inputs."""

    cfg: Config
    source: Source
    as_of: dt.date
    model: ChurnModel
    version: str
    requested: str | None
    staleness: StalenessCheck
    steps: Steps
    started: float  # Unix time the run started (leftovers of killed runs are judged against it)
    # the uplift model and its version (scoring.rank_by: saved_value)
    uplift: tuple[UpliftModel, str] | None = None

    def manifest(
        self, counts: Counts, size: ListSize, value: ValueAtRisk, drift: DriftCheck
    ) -> ScoringManifest:
        """The run's manifest before publishing (files and timings are added by `publish_outputs`)."""
        src = self.source
        return ScoringManifest(
            as_of=self.as_of,
            model=model_info(
                self.cfg.tracking.registered_model, self.version, self.requested, self.model.metadata
            ),
            data=DataInfo(self.cfg.data.source_label, src.fingerprint, src.data_end_date),
            counts=counts,
            list_size=size,
            value=value,
            checks=Checks(ValidationCheck(src.data_end_date), self.staleness, drift),
            ranked_by=self.cfg.scoring.rank_by,
            uplift_model=None
            if self.uplift is None
            else model_info(
                uplift_model_name(self.cfg.tracking.registered_model),
                self.uplift[1],
                None,
                self.uplift[0].metadata,
            ),
            engine=src.engine,
        )


def publish_run(
    run: RunContext,
    scores: pd.DataFrame | ScoresWriter,
    at_risk: pd.DataFrame,
    manifest: ScoringManifest,
    psi: pd.Series,
) -> ScoringResult:
    """Publish the outputs into `<workdir>/scores/as_of=.../` (all or nothing) and describe the run."""
    final = score_dir(run.cfg.workdir, run.as_of)
    with run.steps.step("write outputs"):
        remove_stale_publish_dirs(final.parent, run.started - STALE_PUBLISH_MARGIN_SECONDS)
        manifest = publish_outputs(final, scores, at_risk, manifest, run.steps.timings)
    return ScoringResult(
        as_of=run.as_of,
        model_name=run.cfg.tracking.registered_model,
        model_version=run.version,
        out_dir=final,
        scores=scores if isinstance(scores, pd.DataFrame) else None,
        at_risk=at_risk,
        manifest=manifest,
        psi=psi,
        drift_warnings=dict(manifest.checks.drift.warnings),
        timings=dict(run.steps.timings),
    )


# ------------------------------------------------------------------------------------ the run's inputs


def validated_source(cfg: Config, as_of: dt.date | None) -> Source:
    """The configured data source, opened and checked against the contract (raises on a violation)."""
    return open_source(
        cfg.data.source,
        validate=True,
        cfg=cfg.data,
        as_of=as_of,
        duplicates_window_days=max(cfg.features.windows),
    )


def customer_table(source: Source, value_column: str | None, only: pd.Series | None = None) -> pd.DataFrame:
    """customer_id, signup_date, churn_date (and the value column) of every customer (or of the ids `only`),
    for the output checks and the values."""
    customers = source.tables.customers
    if only is not None:
        customers = customers.semi_join(ibis.memtable({"customer_id": only.to_numpy()}), "customer_id")
    cols = ["customer_id", "signup_date", "churn_date"]
    if value_column is not None:
        if value_column not in customers.columns:
            attrs = [c for c in customers.columns if c not in cols]
            raise ConfigError(
                f"scoring.value_column {value_column!r} is not a column of the customers table; it has {attrs} "
                "(or set value_column: null to use evaluation.customer_value)"
            )
        cols.append(value_column)
    # via Arrow with dates as datetime64: ibis' own to_pandas builds a Python date per cell of a column with
    # nulls (churn_date), 1 s for 1.8M customers
    frame = customers.select(*cols).to_pyarrow().to_pandas(date_as_object=False)
    for c in ("signup_date", "churn_date"):
        frame[c] = pd.to_datetime(frame[c])
    return frame


def scoring_features(cfg: Config, source: Source, as_of: dt.date) -> pd.DataFrame:
    """Feature frame (rows 0..n-1) of the customers to score at `as_of`; raises when there is none."""
    features = compute_features(cfg, as_of, source)
    if cfg.label.kind == "inactivity":
        # The model learnt only customers with an event in the lookback: lapsed ones are already gone
        # by this definition and would be scored outside what the model knows.
        population = labelled_customers(source.tables, as_of, cfg.label).to_pyarrow()["customer_id"]
        features = features[features["customer_id"].isin(population.to_numpy())]
    if features.empty:
        raise ConfigError(
            f"no customer is active at the as-of date {as_of} (data ends {source.data_end_date}); "
            "choose an as-of date inside the data"
        )
    return features.reset_index(drop=True)


def feature_psi(model: ChurnModel, features: pd.DataFrame) -> pd.Series:
    """PSI per feature between the model's training reference and `features` (empty without a reference)."""
    if not model.reference or not model.reference.get("features"):
        log.warning("the model carries no drift reference: drift check skipped")
        return pd.Series(dtype=float, name="psi")
    return population_stability(model.reference, features)


def listed_reasons(
    model: ChurnModel, features: pd.DataFrame, top: pd.DataFrame, cfg: ScoringConfig
) -> pd.DataFrame:
    """Reasons and suggested action of each listed customer (the `top` rows of the scores), in list order."""
    # scores' index is the feature-frame row of each customer: the listed customers' rows, in list order.
    listed = features.iloc[top.index.to_numpy()].reset_index(drop=True)
    contrib = model.contributions(listed, method=cfg.attribution)
    return reasons_and_actions(contrib, listed, cfg)


def load_uplift_model(cfg: Config) -> tuple[UpliftModel, str]:
    """The champion of `churn train-uplift` beside the churn model, and its version (scoring.rank_by: saved_value)."""
    return load_model(
        cfg.tracking_uri,
        uplift_model_name(cfg.tracking.registered_model),
        None,
        kind=UpliftModel,
        fix="run `churn train-uplift` first (it learns from campaigns with control groups), or set "
        "scoring.rank_by: risk",
    )


def saved_value(
    model: UpliftModel, features: pd.DataFrame, customers: pd.DataFrame, cfg: Config
) -> tuple[np.ndarray, np.ndarray]:
    """Per scored customer: the uplift (churn a contact prevents) and the value it is expected to save.

    uplift x value is the issue's P(churn) x (share of that risk a contact removes) x value: the uplift is
    already the absolute fall in P(churn).
    """
    uplift = np.asarray(model.predict(None, features), dtype=np.float64)
    value, _ = customer_value(customers, features["customer_id"], cfg)
    return uplift, uplift * value


def model_info(name: str, version: str, requested: str | None, metadata: dict) -> ModelInfo:
    """The manifest's record of the model version that scored (`requested` None: the champion)."""
    return ModelInfo(
        name=name,
        version=str(version),
        requested=requested or "champion",
        trained_at=metadata.get("trained_at"),
        data_fingerprint=metadata.get("data_fingerprint"),
    )
