"""Nightly scoring: active customers as of a date -> full scores table, at-risk list with reasons, manifest.

The run is all-or-nothing. Checks come first (contract validation, staleness, drift) and raise before
anything is written; the three outputs are written into a temporary directory next to
`<workdir>/scores/as_of=YYYY-MM-DD/` that replaces it whole only when complete. Re-running a date replaces
that date's outputs, and the same inputs give byte-identical Parquet files (no wall-clock time inside
them; timings live in the manifest only).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from churn_pipeline.core.artifacts import (
    AT_RISK_COLUMNS,
    AT_RISK_FILE,
    MANIFEST_FILE,
    SCORES_COLUMNS,
    SCORES_FILE,
    WEBHOOK_LEDGER_FILE,
    score_dir,
)
from churn_pipeline.core.config import Config, DriftConfig, FeatureConfig, ScoringConfig, TierConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError, DriftError, StaleDataError
from churn_pipeline.core.progress import Steps

log = logging.getLogger(__name__)

# Delivery state of the exports, kept beside the list it describes (see churn_pipeline.stages.export.webhook).
_CARRIED_OVER = (WEBHOOK_LEDGER_FILE,)
# What churn_pipeline.data.io.atomic_directory leaves when a run dies mid-publish: its temp dir
# (`.as_of=DATE.<mkdtemp's 8 chars>.tmp`) and, killed between its two renames, the replaced `.as_of=DATE.old-PID`.
_PUBLISH_LEFTOVER_RE = re.compile(r"^\.(as_of=\d{4}-\d{2}-\d{2})\.(?:[a-z0-9_]{8}\.tmp|old-\d+)$")
# A leftover is removed only when nothing in it changed for this long before the current run started: a
# live run writes its files within seconds of creating the folder, so it is never this old.
STALE_PUBLISH_MARGIN_SECONDS = 15 * 60
_ACTIVITY_TABLES = ("events", "support_contacts", "surveys", "payments")


@dataclass
class ScoringResult:
    """The published outputs of one scoring run (frames as written) and its manifest."""

    as_of: dt.date
    model_name: str
    model_version: str
    out_dir: Path
    scores: pd.DataFrame
    at_risk: pd.DataFrame
    manifest: dict
    psi: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    drift_warnings: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # every step, including writing the outputs


# ----------------------------------------------------------------------------------------------- checks


def newest_activity(source, as_of: dt.date) -> tuple[dt.date | None, str | None]:
    """Date of the newest activity known at `as_of` (events, else the other activity tables) and its table."""
    from churn_pipeline.features.base import known_at

    tables = source.tables
    names = (
        ["events"]
        if tables.events is not None
        else [n for n in _ACTIVITY_TABLES if getattr(tables, n) is not None]
    )
    best: tuple[dt.date | None, str | None] = (None, None)
    for name in names:
        t = getattr(tables, name)
        value = known_at(t, as_of).ts.max().execute()
        if value is not None and not pd.isna(value):
            day = pd.Timestamp(value).date()
            if best[0] is None or day > best[0]:
                best = (day, name)
    if best[1] is None and names:
        best = (None, "/".join(names))
    return best


def check_staleness(source, as_of: dt.date, max_staleness_days: int) -> dict:
    """Raise StaleDataError when the newest activity is more than `max_staleness_days` before `as_of`."""
    newest, table = newest_activity(source, as_of)
    if table is None:
        return {
            "status": "skipped",
            "reason": "the source has no activity tables (events, support, surveys, payments)",
        }
    if newest is None:
        raise StaleDataError(
            f"no {table} data on or before the as-of date {as_of}: nothing to score from. Choose a later --as-of "
            f"(the data ends {source.data_end_date}) or load fresh data"
        )
    age = (as_of - newest).days
    report = {
        "status": "passed",
        "newest_activity": newest.isoformat(),
        "table": table,
        "age_days": age,
        "max_staleness_days": max_staleness_days,
    }
    if age > max_staleness_days:
        raise StaleDataError(
            f"stale data: the newest {table} row is from {newest}, {age} days before the as-of date {as_of}; "
            f"at most {max_staleness_days} allowed (data.max_staleness_days). Load fresh data, score an earlier "
            f"--as-of, or raise data.max_staleness_days if this lag is expected"
        )
    return report


def check_drift(psi: pd.Series, cfg: DriftConfig) -> dict:
    """PSI per feature against the thresholds: raise DriftError above `fail_psi`, list warnings above `warn_psi`."""
    if psi.empty:
        return {
            "status": "skipped",
            "reason": "the model carries no drift reference",
            "warnings": {},
            "psi": {},
        }
    psi = psi.sort_values(ascending=False, kind="stable")
    failed = psi[psi > cfg.fail_psi]
    warned = psi[(psi > cfg.warn_psi) & (psi <= cfg.fail_psi)]
    if not failed.empty:
        listed = ", ".join(f"{name} (PSI {value:.3f})" for name, value in failed.items())
        raise DriftError(
            f"feature drift above scoring.drift.fail_psi={cfg.fail_psi:g} in {len(failed)} feature(s): {listed}. "
            f"The population moved away from the training data: retrain (`churn train`) or, after review, raise "
            f"scoring.drift.fail_psi. Nothing was published"
        )
    return {
        "status": "warn" if len(warned) else "passed",
        "warn_psi": cfg.warn_psi,
        "fail_psi": cfg.fail_psi,
        "warnings": {name: round(float(v), 6) for name, v in warned.items()},
        "psi": {name: round(float(v), 6) for name, v in psi.items()},
    }


def check_outputs(
    scores: pd.DataFrame, at_risk: pd.DataFrame, customers: pd.DataFrame, as_of: dt.date
) -> None:
    """Boundary check of what is about to be published: unique ids, probabilities in [0, 1], only active customers."""
    problems = []
    for name, frame in (("scores", scores), ("at_risk", at_risk)):
        dup = frame["customer_id"].duplicated()
        if dup.any():
            problems.append(f"{name}: customer_id not unique, e.g. {frame.loc[dup, 'customer_id'].iloc[0]!r}")
        p = frame["churn_probability"].to_numpy(dtype=np.float64)
        bad = ~((p >= 0) & (p <= 1))
        if bad.any():
            problems.append(f"{name}: {int(bad.sum())} churn_probability value(s) outside [0, 1] (or NaN)")
    if not at_risk["customer_id"].isin(scores["customer_id"]).all():
        problems.append("at_risk: customers that are not in the scores table")
    as_of_ts = pd.Timestamp(as_of)
    inactive = customers.loc[
        (customers["signup_date"] > as_of_ts) | (customers["churn_date"] <= as_of_ts), "customer_id"
    ]
    for name, frame in (("scores", scores), ("at_risk", at_risk)):
        hit = frame["customer_id"].isin(inactive)
        if hit.any():
            problems.append(
                f"{name}: {int(hit.sum())} customer(s) not active at {as_of} (churned or not yet signed up), "
                f"e.g. {frame.loc[hit, 'customer_id'].iloc[0]!r}"
            )
    if problems:
        raise DataValidationError([f"scoring output check failed (nothing published): {p}" for p in problems])


_WINDOW_RE = re.compile(r"_(\d+)d$")
_PER_KEY_RES = (  # per-value features: (config key, name pattern giving the value)
    ("event_types", re.compile(r"^events_(?!trend_)(?P<v>.+)_\d+d$")),
    ("support_channels", re.compile(r"^contacts_(?P<v>.+)_\d+d$")),
    ("important_event_types", re.compile(r"^days_since_last_(?P<v>.+)$")),
)
_FIXED_RECENCY = {
    "event",
    "payment",
    "contact",
    "complaint",
    "survey",
}  # days_since_last_<these> always exist
_ATTRIBUTE_KEYS = "features.exclude_attributes / categorical_attributes / numeric_attributes"


def feature_cause(name: str, cfg: FeatureConfig, *, produced: bool) -> str:
    """Why the current config produces (`produced`) or does not produce a feature: the deciding config key."""
    from churn_pipeline.features.catalog import family

    fam = family(name)
    if fam == "attributes":
        if produced:
            return f"customer attributes the model was trained without ({_ATTRIBUTE_KEYS}, or new customers columns)"
        return (
            f"customer attributes no longer produced ({_ATTRIBUTE_KEYS}, or the customers table lacks them)"
        )
    w = _WINDOW_RE.search(name)
    if w and not name.startswith("events_trend_"):  # the trend spans are fixed, not features.windows
        days = int(w.group(1))
        if (days in cfg.windows) == produced:
            return f"features.windows {list(cfg.windows)} {'has' if produced else 'lacks'} {days}"
    for key, rx in _PER_KEY_RES:
        m = rx.match(name)
        if not m or (key == "important_event_types" and m.group("v") in _FIXED_RECENCY):
            continue
        values = list(getattr(cfg, key))
        if (m.group("v") in values) == produced:
            return f"features.{key} {values} {'has' if produced else 'lacks'} {m.group('v')!r}"
    return f"the {fam} family (its table may be missing from the data source, or the feature code changed)"


def check_model_features(
    model_features: list[str], produced: list[str], cfg: FeatureConfig, model_label: str
) -> None:
    """Raise ConfigError when the current feature config does not produce every feature the model was trained on.

    The missing (and the extra) features are listed grouped by the config key that decides them. Extra
    features alone are harmless (the model ignores them) and only logged.
    """
    produced_set, expected_set = set(produced), set(model_features)
    missing = [f for f in model_features if f not in produced_set]
    extra = [f for f in produced if f not in expected_set]
    if not missing:
        if extra:
            log.info("features the config produces that %s does not use: %s", model_label, ", ".join(extra))
        return

    def grouped(names: list[str], is_produced: bool) -> str:
        groups: dict[str, list[str]] = {}
        for n in names:
            groups.setdefault(feature_cause(n, cfg, produced=is_produced), []).append(n)
        return "\n".join(f"    - {cause}: {', '.join(ns)}" for cause, ns in groups.items())

    parts = [
        f"{model_label} does not match the feature config: the model expects {len(missing)} feature(s) "
        f"the current config does not produce:\n{grouped(missing, False)}"
    ]
    if extra:
        parts.append(
            f"  the config produces {len(extra)} feature(s) the model does not know:\n{grouped(extra, True)}"
        )
    parts.append(
        "  Score with the config the model was trained with (its features section), or retrain with this "
        "config (`churn train`). Nothing was published"
    )
    raise ConfigError("\n".join(parts))


# ------------------------------------------------------------------------------------------ pure pieces


def date_column(as_of: dt.date, n: int) -> pd.arrays.ArrowExtensionArray:
    """`n` copies of `as_of` as an Arrow date32 column (a Parquet DATE, not a timestamp)."""
    return pd.arrays.ArrowExtensionArray(pa.array(np.full(n, np.datetime64(as_of, "D"))))


def rank_scores(
    customer_ids: pd.Series, probability: np.ndarray, as_of: dt.date, model_version: str
) -> pd.DataFrame:
    """Every scored customer by probability descending (ties by customer_id): rank 1.. and percentile.

    `percentile` is the share of scored customers at or below this rank, in percent: 100 for the riskiest.
    The index holds each row's position in the input, so callers can line other per-customer data up.
    """
    frame = pd.DataFrame(
        {
            "customer_id": customer_ids.to_numpy(),
            "churn_probability": np.asarray(probability, dtype=np.float64),
        }
    )
    frame = frame.sort_values(["churn_probability", "customer_id"], ascending=[False, True], kind="mergesort")
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
    from churn_pipeline.models.evaluate import top_k_count

    cutoffs = np.array([top_k_count(list_size, t.top_pct) for t in tiers], dtype=np.int64)
    names = np.array([t.name for t in tiers] + [None], dtype=object)
    return names[np.searchsorted(cutoffs, np.asarray(rank), side="left")]


def customer_value(customers: pd.DataFrame, ids: pd.Series, cfg: Config) -> tuple[np.ndarray, str]:
    """Value kept if each customer is retained, and where it comes from."""
    sc = cfg.scoring
    if sc.value_column is None:
        return np.full(len(ids), cfg.evaluation.customer_value, dtype=np.float64), "evaluation.customer_value"
    monthly = customers.set_index("customer_id")[sc.value_column]
    values = pd.to_numeric(monthly.reindex(ids.to_numpy()), errors="coerce").to_numpy(dtype=np.float64)
    return values * sc.value_months, f"customers.{sc.value_column} x {sc.value_months:g} months"


# ---------------------------------------------------------------------------------------------- the run


_STEPS = ["open and validate data", "staleness check", "load model", "features", "drift check", "predict",
          "reasons", "checks", "write outputs"]  # fmt: skip


def run_scoring(
    cfg: Config, as_of: dt.date | None = None, model_version: str | None = None, *, progress: bool = False
) -> ScoringResult:
    """Score every customer active at `as_of` (default: the data's last date) and publish the outputs."""
    started = time.time()
    steps = Steps(total=len(_STEPS), progress=progress, title="scoring")
    try:
        return _run(cfg, as_of, model_version, steps, started)
    finally:
        steps.close()


def _run(
    cfg: Config, as_of: dt.date | None, model_version: str | None, steps: Steps, started: float
) -> ScoringResult:
    from churn_pipeline.data.io import open_source
    from churn_pipeline.features.labels import labelled_customers
    from churn_pipeline.models.evaluate import top_k_count
    from churn_pipeline.models.reasons import reasons_and_actions
    from churn_pipeline.models.registry import load_model
    from churn_pipeline.stages.training_set import compute_features

    sc = cfg.scoring
    with steps.step("open and validate data"):
        source = open_source(
            cfg.data.source,
            validate=True,
            cfg=cfg.data,
            as_of=as_of,
            duplicates_window_days=max(cfg.features.windows),
        )
    as_of = as_of or source.data_end_date
    validation = {"status": "passed", "data_end_date": source.data_end_date.isoformat()}

    with steps.step("staleness check"):
        staleness = check_staleness(source, as_of, cfg.data.max_staleness_days)

    with steps.step("load model"):
        model, version = load_model(
            cfg.tracking_uri, cfg.tracking.registered_model, model_version or sc.model_version
        )
        customers = _customer_table(source, sc.value_column)

    with steps.step("features"):
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
    features = features.reset_index(drop=True)
    check_model_features(
        model.feature_names,
        [c for c in features.columns if c != "customer_id"],
        cfg.features,
        f"model {cfg.tracking.registered_model} v{version}",
    )

    with steps.step("drift check"):
        psi = _population_stability(model, features)
        drift = check_drift(psi, sc.drift)

    with steps.step("predict"):
        probability = np.asarray(model.predict(None, features), dtype=np.float64)
        scores = rank_scores(features["customer_id"], probability, as_of, version)

    n = len(scores)
    pct, origin = list_size_pct(sc, model.metadata, cfg.evaluation.list_size_pct)
    k = top_k_count(n, pct)
    top = scores.iloc[:k]

    with steps.step("reasons"):
        # scores' index is the feature-frame row of each customer: the listed customers' rows, in list order.
        listed = features.iloc[top.index.to_numpy()].reset_index(drop=True)
        contrib = model.contributions(listed, method=sc.attribution)
        reasons = reasons_and_actions(contrib, listed, sc)
        value, value_origin = customer_value(customers, top["customer_id"], cfg)
        at_risk = pd.DataFrame(
            {
                "customer_id": top["customer_id"].to_numpy(),
                "churn_probability": top["churn_probability"].to_numpy(),
                "risk_tier": risk_tiers(top["rank"].to_numpy(), k, sc.tiers),
                "expected_value_at_risk": top["churn_probability"].to_numpy() * value,
            }
        )
        for col in reasons.columns:
            at_risk[col] = reasons[col].to_numpy()
        at_risk["rank"] = top["rank"].to_numpy()
        at_risk["as_of"] = date_column(as_of, k)
        at_risk["model_version"] = str(version)
        at_risk = at_risk[list(AT_RISK_COLUMNS)]

    with steps.step("checks"):
        check_outputs(scores, at_risk, customers, as_of)

    final = score_dir(cfg.workdir, as_of)
    model_name = cfg.tracking.registered_model
    manifest = {
        "as_of": as_of.isoformat(),
        "model": {
            "name": model_name,
            "version": str(version),
            "requested": model_version or sc.model_version or "champion",
            "trained_at": model.metadata.get("trained_at"),
            "data_fingerprint": model.metadata.get("data_fingerprint"),
        },
        "data": {
            "source": str(cfg.data.source),
            "fingerprint": source.fingerprint,
            "data_end_date": source.data_end_date.isoformat(),
        },
        "counts": {
            "active_scored": n,
            "at_risk": len(at_risk),
            "by_tier": {str(t): int(c) for t, c in at_risk["risk_tier"].value_counts(dropna=False).items()},
            "mean_probability_scored": float(scores["churn_probability"].mean()),
        },
        "list_size": {"pct": pct, "customers": k, "origin": origin},
        "value": {
            "origin": value_origin,
            "total_expected_value_at_risk": float(np.nansum(at_risk["expected_value_at_risk"])),
        },
        "checks": {
            "validation": validation,
            "staleness": staleness,
            "drift": drift,
            "outputs": {"status": "passed"},
        },
    }
    with steps.step("write outputs"):
        remove_stale_publish_dirs(final.parent, started - STALE_PUBLISH_MARGIN_SECONDS)
        manifest["files"] = _publish(final, scores, at_risk, manifest, steps)
    return ScoringResult(
        as_of=as_of,
        model_name=model_name,
        model_version=str(version),
        out_dir=final,
        scores=scores,
        at_risk=at_risk,
        manifest=manifest,
        psi=psi,
        drift_warnings=dict(drift["warnings"]),
        timings=dict(steps.timings),
    )


def _customer_table(source, value_column: str | None) -> pd.DataFrame:
    """customer_id, signup_date, churn_date (and the value column) of every customer, for the output checks."""
    customers = source.tables.customers
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


def _population_stability(model, features: pd.DataFrame) -> pd.Series:
    from churn_pipeline.models.drift import population_stability

    if not model.reference or not model.reference.get("features"):
        log.warning("the model carries no drift reference: drift check skipped")
        return pd.Series(dtype=float, name="psi")
    return population_stability(model.reference, features)


def remove_stale_publish_dirs(scores_root: Path, older_than: float) -> list[str]:
    """Remove the temp folders of killed publishes under `scores_root`; return their names.

    Only folders named as `atomic_directory` names them (its temp dirs, and replaced copies whose date was
    published since), and only when neither the folder nor anything directly in it was modified at or
    after `older_than` (a Unix time), so another run's live folder is never touched.
    """
    removed = []
    if not Path(scores_root).is_dir():
        return removed
    for entry in os.scandir(scores_root):
        m = _PUBLISH_LEFTOVER_RE.match(entry.name)
        if not (m and entry.is_dir(follow_symlinks=False)):
            continue
        if not entry.name.endswith(".tmp") and not (Path(scores_root) / m.group(1)).is_dir():
            continue  # a replaced copy whose successor never landed: the only copy of that date, keep it
        try:
            newest = max([entry.stat().st_mtime] + [e.stat().st_mtime for e in os.scandir(entry.path)])
        except FileNotFoundError:  # its owner finished (renamed or removed it) meanwhile
            continue
        if newest < older_than:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    if removed:
        log.warning("removed %d leftover folder(s) of killed scoring runs in %s: %s", len(removed), scores_root,
                    ", ".join(sorted(removed)))  # fmt: skip
    return sorted(removed)


def _publish(final: Path, scores: pd.DataFrame, at_risk: pd.DataFrame, manifest: dict, steps: Steps) -> dict:
    """Write the three outputs into a temp dir that replaces `final` whole; return the files' SHA-256."""
    from churn_pipeline.data.io import atomic_directory, atomic_write_json, atomic_write_parquet, file_sha256

    with atomic_directory(final) as tmp:
        files = {}
        for name, frame in ((SCORES_FILE, scores), (AT_RISK_FILE, at_risk)):
            atomic_write_parquet(frame.reset_index(drop=True), tmp / name)
            files[name] = file_sha256(tmp / name)
        old_at_risk = final / AT_RISK_FILE
        if old_at_risk.is_file() and file_sha256(old_at_risk) == files[AT_RISK_FILE]:
            # Same list as before: its export ledgers still describe it, keep them so re-exports skip delivered rows.
            for name in _CARRIED_OVER:
                if (final / name).is_file():
                    shutil.copy2(final / name, tmp / name)
        manifest["files"] = files
        manifest["timings_seconds"] = dict(steps.timings)
        atomic_write_json(manifest, tmp / MANIFEST_FILE)
    return files
