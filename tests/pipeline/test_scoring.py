"""Scoring: ranking, tiers, list size and the run's checks on small hand-made data; the whole stage on the
shared simulated company with a model trained by `churn_pipeline.stages.train.run_training` (slow)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.core.artifacts import AT_RISK_COLUMNS, score_dir
from churn_pipeline.core.config import DriftConfig, FeatureConfig, LabelConfig, ScoringConfig, TierConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError, DriftError, StaleDataError
from churn_pipeline.data.io import source_from_frames
from churn_pipeline.stages.score import (
    at_risk_list,
    control_group,
    list_size_pct,
    listed_rows,
    rank_scores,
    risk_tiers,
    run_counts,
    run_scoring,
)
from churn_pipeline.stages.score_checks import (
    check_drift,
    check_model_features,
    check_outputs,
    check_staleness,
    feature_cause,
)
from churn_pipeline.stages.score_manifest import ListSize

AS_OF = dt.date(2025, 3, 31)


# ------------------------------------------------------------------------------------------- pure pieces


def test_rank_scores_orders_by_probability_then_id_and_keeps_row_positions():
    ids = pd.Series(["c", "a", "b", "d"])
    scores = rank_scores(ids, np.array([0.2, 0.7, 0.2, 0.9]), AS_OF, "4")
    assert scores["customer_id"].tolist() == ["d", "a", "b", "c"]  # b before c: tie broken by id
    assert scores["rank"].tolist() == [1, 2, 3, 4]
    assert scores["percentile"].tolist() == [100.0, 75.0, 50.0, 25.0]
    assert scores.index.tolist() == [3, 1, 2, 0], "index = row of the input, to line features up"
    assert set(scores["as_of"]) == {AS_OF} and set(scores["model_version"]) == {"4"}


def test_rank_scores_by_saved_value_orders_by_it_unknown_last_then_by_probability():
    ids = pd.Series(["a", "b", "c", "d", "e"])
    probability = np.array([0.9, 0.2, 0.5, 0.6, 0.3])
    uplift = np.array([0.01, 0.10, 0.05, -0.02, 0.05])
    value = np.array([100.0, 100.0, 100.0, 100.0, np.nan])
    scores = rank_scores(ids, probability, AS_OF, "4", uplift, uplift * value)
    # b saves 10, c 5, a 1, d -2 (a contact makes it worse), e unknown (no value): last
    assert scores["customer_id"].tolist() == ["b", "c", "a", "d", "e"]
    assert scores["expected_saved_value"].iloc[:4].tolist() == pytest.approx([10.0, 5.0, 1.0, -2.0])
    assert scores["uplift"].tolist() == pytest.approx([0.10, 0.05, 0.01, -0.02, 0.05])
    assert scores["rank"].tolist() == [1, 2, 3, 4, 5]
    # ranked by risk, the uplift columns are present and empty
    by_risk = rank_scores(ids, probability, AS_OF, "4")
    assert by_risk["customer_id"].tolist()[0] == "a"
    assert by_risk[["uplift", "expected_saved_value"]].isna().all().all()


def test_a_list_ranked_by_saved_value_stops_where_the_saved_value_stops_being_positive():
    ids = pd.Series([f"c{i}" for i in range(10)])
    uplift = np.array([0.2, 0.1, 0.05, 0.0, -0.1, 0.3, 0.01, -0.05, 0.02, 0.04])
    scores = rank_scores(ids, np.full(10, 0.5), AS_OF, "1", uplift, uplift * 50)
    top, size = listed_rows(
        scores, ListSize(pct=80.0, customers=8, origin="scoring.list_size"), "saved_value"
    )
    assert (top["expected_saved_value"] > 0).all() and len(top) == 7 == size.customers
    assert "1 without a positive expected saved value left off" in size.origin and size.pct == 80.0
    small, same = listed_rows(scores, ListSize(pct=30.0, customers=3, origin="o"), "saved_value")
    assert len(small) == 3 and same.customers == 3 and same.origin == "o"
    # ranked by risk, the list is the top rows whatever their saved value
    risk, kept = listed_rows(rank_scores(ids, uplift, AS_OF, "1"), ListSize(80.0, 8, "o"), "risk")
    assert len(risk) == 8 and kept.customers == 8


def test_risk_tiers_are_cumulative_top_percentages_of_the_list():
    tiers = (TierConfig(name="critical", top_pct=2), TierConfig(name="high", top_pct=10))
    got = risk_tiers(np.arange(1, 201), 200, tiers)
    assert (got[:4] == "critical").all() and got[4] == "high"  # 2% of 200 = 4
    assert (got[4:20] == "high").all() and got[20] is None  # 10% of 200 = 20; beyond every tier: none
    # A tiny population still gets at least one customer in the first tier.
    assert risk_tiers(np.array([1, 2, 3]), 3, tiers).tolist() == ["critical", None, None]


def test_at_risk_list_carries_the_scores_rank_date_and_version_with_tiers_values_and_reasons():
    scores = rank_scores(pd.Series([10, 11, 12, 13, 14]), np.array([0.1, 0.9, 0.5, 0.7, 0.3]), AS_OF, "3")
    top = scores.iloc[:3]
    reasons = pd.DataFrame(
        {
            "reason_1": ["r1 of 11", "r1 of 13", None],
            "reason_2": [None, "r2 of 13", None],
            "reason_3": [None, None, None],
            "suggested_action": ["call", "mail", "watch"],
        }
    )
    tiers = (TierConfig(name="critical", top_pct=30), TierConfig(name="high", top_pct=60))  # 1, 2 of 3
    at_risk = at_risk_list(
        top, reasons, np.array([100.0, 10.0, np.nan]), ScoringConfig(tiers=tiers, control_pct=0)
    )

    assert list(at_risk.columns) == list(AT_RISK_COLUMNS)
    assert at_risk["customer_id"].tolist() == [11, 13, 12] and at_risk["rank"].tolist() == [1, 2, 3]
    assert at_risk["risk_tier"].tolist() == ["critical", "high", None]
    assert at_risk["group"].tolist() == ["treatment"] * 3  # control_pct 0: nobody held out
    assert at_risk["reason_1"].tolist() == ["r1 of 11", "r1 of 13", None]
    assert at_risk["suggested_action"].tolist() == ["call", "mail", "watch"]
    assert np.allclose(at_risk["expected_value_at_risk"].to_numpy()[:2], [90.0, 7.0])
    assert np.isnan(at_risk["expected_value_at_risk"].iloc[2])
    assert set(at_risk["as_of"]) == {AS_OF} and set(at_risk["model_version"]) == {"3"}

    counts = run_counts(len(scores), scores["churn_probability"].mean(), at_risk)
    assert (counts.active_scored, counts.at_risk) == (5, 3)
    assert counts.by_tier == {"critical": 1, "high": 1, "None": 1}
    assert counts.mean_probability_scored == pytest.approx(0.5)
    assert counts.control == 0


def test_control_group_is_an_exact_share_of_each_tier_stable_and_seeded():
    rng = np.random.default_rng(3)
    ids = pd.Series(rng.choice(10**9, size=2_000, replace=False)).astype("int64")
    tiers = np.array(["critical"] * 400 + ["high"] * 600 + [None] * 1_000, dtype=object)
    group = control_group(ids, tiers, 10.0, seed=0)
    assert set(group) == {"control", "treatment"}
    for tier, n in (("critical", 400), ("high", 600)):
        assert (group[tiers == tier] == "control").sum() == n // 10  # exact per tier (stratified)
    assert (group[pd.isna(tiers)] == "control").sum() == 100  # customers beyond every tier too
    # Stable: a rerun, or the same customers listed in another order, gives each customer the same group.
    assert (control_group(ids, tiers, 10.0, seed=0) == group).all()
    perm = rng.permutation(len(ids))
    assert (
        control_group(ids.iloc[perm].reset_index(drop=True), tiers[perm], 10.0, seed=0) == group[perm]
    ).all()
    # Random with respect to the list order (rank): the first and second half of a tier are both sampled.
    high = np.flatnonzero(tiers == "high")
    first, second = (group[high[:300]] == "control").sum(), (group[high[300:]] == "control").sum()
    assert first + second == 60 and min(first, second) >= 15
    # Another seed draws another group of the same sizes; 0% holds out nobody; 10% of a 5-tier rounds to 1.
    other = control_group(ids, tiers, 10.0, seed=1)
    assert (other == "control").sum() == (group == "control").sum() and (other != group).any()
    assert (control_group(ids, tiers, 0.0, seed=0) == "treatment").all()
    assert (control_group(ids.iloc[:5], np.array(["a"] * 5, dtype=object), 10.0, 0) == "control").sum() == 1


def test_list_size_from_profit_metadata_or_config():
    assert list_size_pct(ScoringConfig(list_size="profit"), {"optimal_list_pct": 7}, 10.0)[0] == 7.0
    pct, origin = list_size_pct(ScoringConfig(list_size=3.5), {"optimal_list_pct": 7}, 10.0)
    assert pct == 3.5 and origin == "scoring.list_size"
    pct, origin = list_size_pct(ScoringConfig(list_size="profit"), {}, 10.0)
    assert pct == 10.0 and "evaluation.list_size_pct" in origin


def test_drift_warns_between_thresholds_and_fails_above():
    cfg = DriftConfig(warn_psi=0.1, fail_psi=0.25)
    ok = check_drift(pd.Series({"a": 0.01, "b": 0.15}), cfg)
    assert ok.status == "warn" and ok.warnings == {"b": 0.15} and list(ok.psi) == ["b", "a"]  # riskiest first
    with pytest.raises(DriftError, match=r"tenure_days \(PSI 0\.400\).*scoring\.drift\.fail_psi"):
        check_drift(pd.Series({"a": 0.01, "tenure_days": 0.4, "b": 0.15}), cfg)
    assert check_drift(pd.Series({"a": 0.0}), cfg).status == "passed"
    skipped = check_drift(pd.Series(dtype=float), cfg)
    assert skipped.to_dict() == {"status": "skipped", "reason": skipped.reason, "warnings": {}, "psi": {}}


def test_drift_of_a_feature_that_trends_over_the_training_snapshots_warns_and_does_not_fail():
    cfg = DriftConfig(warn_psi=0.1, fail_psi=0.25)
    psi = pd.Series({"tenure_days": 8.3, "a": 0.01, "b": 0.15})
    # tenure moved 2.1 between the first and the last labelled snapshot (a closed cohort ages): not gated
    got = check_drift(psi, cfg, trend={"tenure_days": 2.1, "a": 0.0, "b": 0.05})
    assert got.status == "warn" and got.warnings == {"tenure_days": 8.3, "b": 0.15}
    assert got.to_dict()["trending"] == {"tenure_days": 2.1}
    # a feature that was stable over the labelled snapshots is gated as before
    with pytest.raises(DriftError, match=r"tenure_days \(PSI 8\.300\)"):
        check_drift(psi, cfg, trend={"tenure_days": 0.05})
    with pytest.raises(DriftError, match=r"in 1 feature\(s\): a \(PSI 0\.300\)"):  # a stable one fails
        check_drift(pd.Series({"tenure_days": 8.3, "a": 0.3}), cfg, trend={"tenure_days": 2.1, "a": 0.0})
    # scoring.drift.trending: fail gates every feature
    with pytest.raises(DriftError, match=r"tenure_days"):
        check_drift(psi, DriftConfig(trending="fail"), trend={"tenure_days": 2.1})
    assert "trending" not in check_drift(pd.Series({"a": 0.01}), cfg, trend={"a": 3.0}).to_dict()


def test_model_feature_check_names_the_config_key_that_decides_each_feature():
    cfg = FeatureConfig(
        windows=(7, 30), event_types=("login",), important_event_types=(), support_channels=()
    )
    assert feature_cause("events_90d", cfg, produced=False) == "features.windows [7, 30] lacks 90"
    assert feature_cause("events_login_30d", cfg, produced=True) == "features.windows [7, 30] has 30"
    assert (
        feature_cause("events_error_30d", cfg, produced=False)
        == "features.event_types ['login'] lacks 'error'"
    )
    assert (
        feature_cause("contacts_chat_7d", cfg, produced=False) == "features.support_channels [] lacks 'chat'"
    )
    got = feature_cause("days_since_last_purchase", cfg, produced=False)
    assert got == "features.important_event_types [] lacks 'purchase'"
    assert "table may be missing" in feature_cause("days_since_last_payment", cfg, produced=False)
    assert "exclude_attributes" in feature_cause("plan", cfg, produced=False)

    check_model_features(["a", "events_7d"], ["events_7d", "a", "events_30d"], cfg, "m v1")  # extras: fine
    with pytest.raises(ConfigError, match=r"m v1 does not match.*\n.*lacks 90: events_90d\n"):
        check_model_features(["events_90d", "a"], ["a"], cfg, "m v1")


def _source(events_until: dt.date | None, payments_until: dt.date | None = None):
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "signup_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]).date,
            "churn_date": [None, pd.Timestamp("2025-01-10").date(), None],
            "plan": ["basic", "pro", "basic"],
        }
    )
    frames = {"customers": customers}
    if events_until is not None:
        frames["events"] = pd.DataFrame(
            {
                "customer_id": [1, 3, 3],
                "ts": pd.to_datetime(
                    [
                        "2024-06-01 10:00",
                        str(events_until) + " 23:59",
                        str(AS_OF + dt.timedelta(9)) + " 12:00",
                    ]
                ),
                "event_type": ["login", "login", "login"],
            }
        )
    if payments_until is not None:
        frames["payments"] = pd.DataFrame(
            {
                "customer_id": [1],
                "ts": pd.to_datetime([str(payments_until) + " 08:00"]),
                "amount": [10.0],
                "status": ["paid"],
            }
        )
    return source_from_frames(frames)


def test_staleness_uses_the_newest_event_known_at_the_as_of_date():
    # An event 9 days AFTER the as-of date exists, but is not known at it and must not make the data fresh.
    fresh = check_staleness(_source(AS_OF - dt.timedelta(days=3)), AS_OF, 3)
    assert fresh.newest_activity == AS_OF - dt.timedelta(days=3) and fresh.age_days == 3
    assert fresh.to_dict()["newest_activity"] == "2025-03-28"
    with pytest.raises(StaleDataError) as err:
        check_staleness(_source(AS_OF - dt.timedelta(days=4)), AS_OF, 3)
    message = str(err.value)
    assert "2025-03-27" in message and "2025-03-31" in message and "data.max_staleness_days" in message


def test_staleness_falls_back_to_other_activity_tables_without_events():
    got = check_staleness(_source(None, payments_until=AS_OF - dt.timedelta(days=1)), AS_OF, 3)
    assert got.table == "payments" and got.age_days == 1
    with pytest.raises(StaleDataError, match="payments"):
        check_staleness(_source(None, payments_until=AS_OF - dt.timedelta(days=30)), AS_OF, 3)


def test_output_check_rejects_churned_duplicate_and_out_of_range_rows():
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "signup_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2025-04-05"]),
            "churn_date": pd.to_datetime([None, "2025-03-31", None]),
        }
    )
    scores = rank_scores(pd.Series([1]), np.array([0.3]), AS_OF, "1")
    check_outputs(scores, scores.iloc[:1], customers, AS_OF)  # fine: customer 1 is active

    churned = rank_scores(pd.Series([1, 2]), np.array([0.3, 0.9]), AS_OF, "1")  # 2 churned ON the as-of date
    with pytest.raises(DataValidationError, match="not active at 2025-03-31"):
        check_outputs(churned, churned, customers, AS_OF)
    future = rank_scores(pd.Series([1, 3]), np.array([0.3, 0.9]), AS_OF, "1")  # 3 signs up later
    with pytest.raises(DataValidationError, match="not active"):
        check_outputs(future, future.iloc[:1], customers, AS_OF)
    bad = rank_scores(pd.Series([1, 1]), np.array([1.2, 0.1]), AS_OF, "1")
    with pytest.raises(DataValidationError) as err:
        check_outputs(bad, bad, customers, AS_OF)
    assert "not unique" in str(err.value) and "outside [0, 1]" in str(err.value)


# ------------------------------------------------------------------------------- the stage (slow, real model)

RUN_FILES = {"scores.parquet", "at_risk.parquet", "manifest.json"}


def _customers(cfg) -> pd.DataFrame:
    frame = pd.read_parquet(cfg.data.source / "customers.parquet")
    for c in ("signup_date", "churn_date"):
        frame[c] = pd.to_datetime(frame[c])
    return frame


def _active_ids(cfg, as_of: dt.date) -> set:
    c = _customers(cfg)
    t = pd.Timestamp(as_of)
    return set(
        c.loc[(c["signup_date"] <= t) & (c["churn_date"].isna() | (c["churn_date"] > t)), "customer_id"]
    )


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(cfg) -> list[str]:
    return [p.name for p in (cfg.workdir / "scores").iterdir() if p.name.startswith(".")]


def _broken_copy(cfg, tmp_path, change) -> object:
    """The company's data in `tmp_path/data`, customers changed by `change`; the config pointing at it."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(cfg.data.source, data)
    customers = pd.read_parquet(data / "customers.parquet")
    change(customers).to_parquet(data / "customers.parquet", index=False)
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": data})})


@pytest.mark.slow
def test_scoring_lists_only_active_customers_with_their_own_reasons(trained):
    from churn_pipeline.features.catalog import describe
    from churn_pipeline.models.evaluate import top_k_count
    from churn_pipeline.models.registry import load_model
    from churn_pipeline.stages.training_set import compute_features

    cfg, training = trained
    result = run_scoring(cfg)
    as_of = result.as_of
    scores, at_risk, manifest = result.scores, result.at_risk, result.manifest

    # Every active customer is scored, and nobody else; churned customers never reach the list.
    assert set(scores["customer_id"]) == _active_ids(cfg, as_of)
    customers = _customers(cfg).set_index("customer_id")
    churned = set(customers.index[customers["churn_date"] <= pd.Timestamp(as_of)])
    assert churned and not (set(at_risk["customer_id"]) & churned)

    # Size, order and tiers.
    model, version = load_model(cfg.tracking_uri, cfg.tracking.registered_model)
    n, k = len(scores), top_k_count(len(scores), model.metadata["optimal_list_pct"])
    assert len(at_risk) == k == manifest.list_size.customers and version == result.model_version
    assert at_risk["rank"].tolist() == list(range(1, k + 1))
    p = at_risk["churn_probability"].to_numpy()
    assert (np.diff(p) <= 0).all() and ((p >= 0) & (p <= 1)).all()
    assert at_risk["customer_id"].tolist() == scores["customer_id"].iloc[:k].tolist()
    critical, high = top_k_count(k, 20.0), top_k_count(k, 50.0)  # the default tiers: shares of the list
    assert (at_risk["risk_tier"].iloc[:critical] == "critical").all()
    assert (at_risk["risk_tier"].iloc[critical:high] == "high").all()
    assert (at_risk["risk_tier"].iloc[high:] == "elevated").all()
    if k >= 5:
        assert at_risk["risk_tier"].nunique() == 3

    # Value at risk from the configured attribute.
    fee = customers.loc[at_risk["customer_id"], "monthly_fee"].to_numpy()
    assert np.allclose(at_risk["expected_value_at_risk"], p * fee * 12)

    # Reasons quote each customer's own feature values: recompute the first reason independently.
    features = compute_features(cfg, as_of).set_index("customer_id").loc[at_risk["customer_id"].iloc[:25]]
    assert cfg.scoring.attribution == "path"  # the default
    contrib = model.contributions(features, method="path")
    for cid in features.index:
        c = contrib.loc[cid]
        top = c.idxmax()
        expected = describe(top, features.loc[cid, top]) if c[top] > 0 else None
        assert at_risk.set_index("customer_id").loc[cid, "reason_1"] == expected
    assert at_risk["suggested_action"].notna().all()

    # The manifest records what happened.
    assert manifest.model.version == version and manifest.as_of == as_of
    assert manifest.counts.active_scored == n and manifest.counts.at_risk == k
    assert set(manifest.checks.drift.psi) == set(model.feature_names)
    # ... and manifest.json is that record, with the published files' checksums.
    on_disk = json.loads((result.out_dir / "manifest.json").read_text())
    assert on_disk == manifest.to_dict() and on_disk["as_of"] == as_of.isoformat()
    assert set(on_disk["checks"]) == {"validation", "staleness", "drift", "outputs"}
    for name in ("scores.parquet", "at_risk.parquet"):
        assert on_disk["files"][name] == hashlib.sha256((result.out_dir / name).read_bytes()).hexdigest()
    assert {p.name for p in result.out_dir.iterdir()} == RUN_FILES


@pytest.mark.slow
def test_treeshap_attribution_gives_treeshap_reasons(trained, tmp_path):
    from churn_pipeline.features.catalog import describe
    from churn_pipeline.models.registry import load_model
    from churn_pipeline.stages.training_set import compute_features

    cfg, _ = trained
    cfg = cfg.model_copy(
        update={
            "workdir": tmp_path / "work",
            "tracking": cfg.tracking.model_copy(update={"uri": cfg.tracking_uri}),
            "scoring": cfg.scoring.model_copy(update={"attribution": "treeshap"}),
        }
    )
    at_risk = run_scoring(cfg).at_risk.set_index("customer_id")
    model, _ = load_model(cfg.tracking_uri, cfg.tracking.registered_model)
    features = compute_features(cfg).set_index("customer_id").loc[at_risk.index]
    shap = model.contributions(features, method="treeshap")
    path = model.contributions(features, method="path")
    # the check below can only catch a run that ignored the setting where the two methods rank differently
    differ = shap.idxmax(axis=1) != path.idxmax(axis=1)
    assert differ.any()
    for cid in [*features.index[differ][:10], *features.index[:10]]:
        top = shap.loc[cid].idxmax()
        expected = describe(top, features.loc[cid, top]) if shap.loc[cid, top] > 0 else None
        assert at_risk.loc[cid, "reason_1"] == expected


@pytest.mark.slow
def test_rerunning_a_date_gives_byte_identical_outputs(trained):

    cfg, _ = trained
    as_of = run_scoring(cfg).as_of - dt.timedelta(days=1)
    first = run_scoring(cfg, as_of)
    before = _snapshot(first.out_dir)
    second = run_scoring(cfg, as_of, model_version=first.model_version)
    after = _snapshot(second.out_dir)

    assert second.out_dir == first.out_dir == score_dir(cfg.workdir, as_of)
    assert set(after) == RUN_FILES
    assert after["scores.parquet"] == before["scores.parquet"]
    assert after["at_risk.parquet"] == before["at_risk.parquet"]
    m1, m2 = json.loads(before["manifest.json"]), json.loads(after["manifest.json"])
    m1.pop("timings_seconds"), m2.pop("timings_seconds")
    m1["model"].pop("requested"), m2["model"].pop("requested")
    assert m1 == m2
    assert not _leftovers(cfg)


@pytest.mark.slow
def test_stale_data_and_failed_validation_publish_nothing(trained, tmp_path):

    cfg, _ = trained
    previous = run_scoring(cfg, model_version=None)
    published = _snapshot(previous.out_dir)

    stale_as_of = previous.as_of + dt.timedelta(days=cfg.data.max_staleness_days + 2)
    with pytest.raises(StaleDataError, match="data.max_staleness_days"):
        run_scoring(cfg, stale_as_of)
    assert not score_dir(cfg.workdir, stale_as_of).exists()

    def duplicate_first(customers: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([customers, customers.iloc[:1]], ignore_index=True)

    broken = _broken_copy(cfg, tmp_path, duplicate_first)
    other_as_of = previous.as_of - dt.timedelta(days=2)
    with pytest.raises(DataValidationError, match="customer_id"):
        run_scoring(broken, other_as_of)
    assert not score_dir(cfg.workdir, other_as_of).exists()

    assert _snapshot(previous.out_dir) == published, "the previous outputs are untouched"
    assert not _leftovers(cfg)


@pytest.mark.slow
def test_drift_above_fail_psi_fails_and_publishes_nothing_below_it_warns(trained, tmp_path):

    cfg, _ = trained

    def tenfold_fees(customers: pd.DataFrame) -> pd.DataFrame:
        return customers.assign(monthly_fee=customers["monthly_fee"] * 10)

    # Same model store, own output dir.
    drifted = _broken_copy(cfg, tmp_path, tenfold_fees).model_copy(
        update={
            "workdir": tmp_path / "work",
            "tracking": cfg.tracking.model_copy(update={"uri": cfg.tracking_uri}),
        }
    )
    with pytest.raises(DriftError, match=r"monthly_fee \(PSI") as err:
        run_scoring(drifted)
    assert "Nothing was published" in str(err.value)
    assert not (drifted.workdir / "scores").exists() or not any((drifted.workdir / "scores").iterdir())

    # Thresholds wide apart: the same drift only warns, and the warning reaches the manifest.
    lenient = drifted.model_copy(
        update={
            "scoring": drifted.scoring.model_copy(update={"drift": DriftConfig(warn_psi=0.0, fail_psi=1e6)})
        }
    )
    result = run_scoring(lenient)
    drift = result.manifest.checks.drift
    assert drift.status == "warn" and "monthly_fee" in drift.warnings
    assert result.drift_warnings["monthly_fee"] > drifted.scoring.drift.fail_psi


@pytest.mark.slow
def test_cli_score_then_export_and_stale_exit_code(trained, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from churn_pipeline.cli import app

    cfg, _ = trained
    out = tmp_path / "out"
    runner = CliRunner()
    # --out moves the outputs (and the default registry location), so the registry is addressed explicitly.
    cfg_path = tmp_path / "config.yaml"
    settings = cfg.model_dump(mode="json")
    settings["tracking"]["uri"] = cfg.tracking_uri
    cfg_path.write_text(yaml.safe_dump(settings))
    scored = runner.invoke(app, ["score", "-c", str(cfg_path), "--out", str(out), "--top", "5"])
    assert scored.exit_code == 0, scored.output
    assert "At-risk customers as of" in scored.output and "active customers" in scored.output
    (as_of_dir,) = (out / "scores").iterdir()
    at_risk = pd.read_parquet(as_of_dir / "at_risk.parquet")
    assert str(at_risk["customer_id"].iloc[0]) in scored.output

    exported = runner.invoke(app, ["export", "-c", str(cfg_path), "--out", str(out), "--to", "csv"])
    assert exported.exit_code == 0, exported.output
    (csv_file,) = (out / "exports").glob("at_risk_*.csv")
    assert len(pd.read_csv(csv_file)) == len(at_risk)

    as_of = dt.date.fromisoformat(as_of_dir.name.removeprefix("as_of="))
    stale = runner.invoke(
        app, ["score", "-c", str(cfg_path), "--out", str(out), "--as-of", str(as_of + dt.timedelta(days=30))]
    )
    assert stale.exit_code == StaleDataError.exit_code, stale.output
    assert "stale data" in stale.output
    missing = runner.invoke(app, ["score", "-c", str(cfg_path), "--out", str(out), "--model-version", "99"])
    assert missing.exit_code == 6 and "99" in missing.output
    settings["scoring"]["rank_by"] = "saved_value"  # no campaigns, no uplift model: says what to run
    cfg_path.write_text(yaml.safe_dump(settings))
    no_uplift = runner.invoke(app, ["score", "-c", str(cfg_path), "--out", str(out)])
    assert no_uplift.exit_code == 6, no_uplift.output
    assert "churn train-uplift" in no_uplift.output and "rank_by: risk" in " ".join(no_uplift.output.split())


@pytest.mark.slow
def test_inactivity_models_score_only_customers_with_recent_activity(company, tmp_path):
    # An inactivity model learnt customers with an event in the lookback; a customer lapsed longer than that
    # has already churned by this definition and must not be scored or listed.
    import duckdb

    from churn_pipeline.stages.train import run_training

    label = LabelConfig(kind="inactivity", horizon_days=30, inactivity_lookback_days=30)
    cfg = company.config_in(tmp_path, label=label)
    run_training(cfg)
    result = run_scoring(cfg)
    as_of = result.as_of
    recent = {
        r[0]
        for r in duckdb.sql(
            f"SELECT DISTINCT customer_id FROM read_parquet('{company.data_dir / 'events.parquet'}') "
            f"WHERE ts >= DATE '{as_of - dt.timedelta(days=29)}' AND ts < DATE '{as_of + dt.timedelta(days=1)}'"
        ).fetchall()
    }
    active = _active_ids(cfg, as_of)
    scored = set(result.scores["customer_id"])
    assert scored == active & recent
    assert active - recent, (
        "the company must have active customers without recent events for this test to bite"
    )
    assert set(result.at_risk["customer_id"]) <= scored


def test_ranking_by_saved_value_on_spark_is_refused_before_anything_runs(tmp_path):
    from churn_pipeline.core.config import Config

    cfg = Config(workdir=tmp_path / "work", data={"engine": "spark"}, scoring={"rank_by": "saved_value"})
    with pytest.raises(ConfigError, match=r"saved_value runs on the DuckDB engine only .* --engine duckdb"):
        run_scoring(cfg)
    assert not (tmp_path / "work").exists()
