"""The scoring run's checks, each raising before anything is published: staleness of the data, the model's
features against the feature config, drift against the model's reference, and the outputs themselves."""

from __future__ import annotations

import datetime as dt
import logging
import re

import numpy as np
import pandas as pd

from churn_pipeline.core.config import DriftConfig, FeatureConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError, DriftError, StaleDataError
from churn_pipeline.core.tables import ACTIVITY_TABLES
from churn_pipeline.data.io import Source
from churn_pipeline.features.base import known_at
from churn_pipeline.features.catalog import family
from churn_pipeline.stages.score_manifest import DriftCheck, StalenessCheck

log = logging.getLogger(__name__)


def newest_activity(source: Source, as_of: dt.date) -> tuple[dt.date | None, str | None]:
    """Date of the newest activity known at `as_of` (events, else the other activity tables) and its table."""
    tables = source.tables
    names = (
        ["events"]
        if tables.events is not None
        else [n for n in ACTIVITY_TABLES if getattr(tables, n) is not None]
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


def check_staleness(source: Source, as_of: dt.date, max_staleness_days: int) -> StalenessCheck:
    """Raise StaleDataError when the newest activity is more than `max_staleness_days` before `as_of`."""
    newest, table = newest_activity(source, as_of)
    if table is None:
        return StalenessCheck(
            status="skipped", reason="the source has no activity tables (events, support, surveys, payments)"
        )
    if newest is None:
        raise StaleDataError(
            f"no {table} data on or before the as-of date {as_of}: nothing to score from. Choose a later --as-of "
            f"(the data ends {source.data_end_date}) or load fresh data"
        )
    age = (as_of - newest).days
    if age > max_staleness_days:
        raise StaleDataError(
            f"stale data: the newest {table} row is from {newest}, {age} days before the as-of date {as_of}; "
            f"at most {max_staleness_days} allowed (data.max_staleness_days). Load fresh data, score an earlier "
            f"--as-of, or raise data.max_staleness_days if this lag is expected"
        )
    return StalenessCheck(
        status="passed",
        newest_activity=newest,
        table=table,
        age_days=age,
        max_staleness_days=max_staleness_days,
    )


def check_drift(psi: pd.Series, cfg: DriftConfig, trend: dict[str, float] | None = None) -> DriftCheck:
    """PSI per feature against the thresholds: raise DriftError above `fail_psi`, list warnings above `warn_psi`.

    `trend`: each feature's PSI between the first and the last labelled training snapshot (the model's
    reference carries it). With `cfg.trending == "warn"` a feature that moved more than `warn_psi` there trends
    with time by itself (the tenure of a closed cohort): its drift is reported as a warning, not a failure,
    since the model was tested out of time on that trend. Every other feature is gated."""
    if psi.empty:
        return DriftCheck(status="skipped", reason="the model carries no drift reference")
    psi = psi.sort_values(ascending=False, kind="stable")
    trend = trend or {}
    trending = {n for n, v in trend.items() if v > cfg.warn_psi} if cfg.trending == "warn" else set()
    over, is_trending = psi > cfg.fail_psi, psi.index.isin(trending)
    failed = psi[over & ~is_trending]
    warned = psi[(psi > cfg.warn_psi) & ~psi.index.isin(failed.index)]
    if not failed.empty:
        listed = ", ".join(f"{name} (PSI {value:.3f})" for name, value in failed.items())
        raise DriftError(
            f"feature drift above scoring.drift.fail_psi={cfg.fail_psi:g} in {len(failed)} feature(s): {listed}. "
            f"The population moved away from the training data: retrain (`churn train`) or, after review, raise "
            f"scoring.drift.fail_psi. Nothing was published"
        )
    exempted = psi[over & is_trending]
    if len(exempted):
        listed = ", ".join(
            f"{name} (PSI {value:.3f}; {trend[name]:.3f} over the labelled snapshots)"
            for name, value in exempted.items()
        )
        log.warning(
            "drift above scoring.drift.fail_psi=%g in feature(s) that trend with time over the training "
            "snapshots, reported and not gated (scoring.drift.trending: warn): %s",
            cfg.fail_psi,
            listed,
        )
    return DriftCheck(
        status="warn" if len(warned) else "passed",
        warn_psi=cfg.warn_psi,
        fail_psi=cfg.fail_psi,
        warnings={name: round(float(v), 6) for name, v in warned.items()},
        psi={name: round(float(v), 6) for name, v in psi.items()},
        trending={name: round(float(trend[name]), 6) for name in exempted.index},
    )


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
