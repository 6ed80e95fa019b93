"""Uplift benchmark: does ranking campaign targets by an uplift model save more customers per contact than
ranking them by risk, and which estimator ranks best? Measured against the simulator's truth (both potential
outcomes of every target) on the latest campaigns, which the models never saw.

Companies simulated over 18 months run a campaign every 4 weeks from month 6 on their own riskiest share
(half held out): 100,000 customers with 10% targeted (seeds 2 and 3) and 40,000 with 5% (seed 1).
`churn train-uplift`'s training set and out-of-time split are used as they are (the training set is cached
beside the company, so a rerun only refits). For each ranking (every estimator of `fit_uplift`, by risk = the
T-learner's control-arm P(churn), at random, and the oracle's true effect) the mean true effect of the top
10/20/50% of the held-out targets is the customers saved per contact; the out-of-time Qini coefficient is what
`churn train-uplift` sees from the observed outcomes.

Two bounds from the truth say how visible a customer's type is in the features: a LightGBM regression of the
TRUE effect on the features (fitted on the training campaigns, ranking the held-out ones: what a learner with
noise-free effects could reach, "ceiling"), and the out-of-time AUC of predicting the persuadable and annoyed
types from the features.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

from bench.common import OUT
from churn_pipeline.core.config import Config, LabelConfig, SimulationConfig
from churn_pipeline.data.io import atomic_directory, atomic_write_json, atomic_write_parquet
from churn_pipeline.models.training import lightgbm_array, training_categories
from churn_pipeline.models.uplift import ESTIMATORS, fit_uplift, qini_curve
from churn_pipeline.stages.score import validated_source
from churn_pipeline.stages.uplift import TARGET_SHARES, UpliftTrainingSet, uplift_training_set

MONTHS = 18
COMPANIES = ((100_000, 10, 2), (100_000, 10, 3), (40_000, 5, 1))  # customers, % targeted, seed
RANKINGS = ("risk", *ESTIMATORS, "ceiling", "random", "oracle")


def simulation(customers: int, target_pct: float, seed: int) -> SimulationConfig:
    return SimulationConfig(
        customers=customers,
        months=MONTHS,
        seed=seed,
        campaigns={"every_weeks": 4, "first_month": 6, "target_pct": target_pct, "control_pct": 50},
    )


def company_root(customers: int, target_pct: float, seed: int) -> Path:
    tail = "" if target_pct == 10 else f"-{target_pct:g}pct"
    return OUT / f"uplift-{customers}-{MONTHS}m-seed{seed}{tail}"


def cached_training_set(customers: int, target_pct: float, seed: int) -> UpliftTrainingSet:
    """The company's uplift training set, simulating the company and building the set only when not cached."""
    sim = simulation(customers, target_pct, seed)
    root = company_root(customers, target_pct, seed)
    if not (root / "truth" / "campaigns.parquet").is_file():
        from churn_pipeline.simulator.company import simulate_company

        with atomic_directory(root) as tmp:
            simulate_company(sim, tmp / "data", tmp / "truth", progress=True)
    frame_path, meta_path = root / "uplift_training_set.parquet", root / "uplift_training_set.json"
    if not (frame_path.is_file() and meta_path.is_file()):
        cfg = Config(
            workdir=root / "work",
            data={"source": root / "data"},
            label=LabelConfig(kind="cancellation", horizon_days=28),  # the contact acts for 4 weeks
            simulation=sim,
        )
        ts = uplift_training_set(cfg, validated_source(cfg, None))
        atomic_write_parquet(ts.frame, frame_path)
        atomic_write_json(
            {"features": ts.feature_names, "categorical": ts.categorical_features, "campaigns": ts.campaigns},
            meta_path,
        )
    meta = json.loads(meta_path.read_text())
    return UpliftTrainingSet(
        pd.read_parquet(frame_path), meta["features"], meta["categorical"], meta["campaigns"]
    )


def truth_bounds(train: pd.DataFrame, held: pd.DataFrame, ts: UpliftTrainingSet) -> dict:
    """The ceiling ranking (the true effect regressed on the features) and the AUCs of the types."""
    categories = training_categories(train, [c for c in ts.categorical_features if c in ts.feature_names])
    x_train = lightgbm_array(train, ts.feature_names, categories)
    x_held = lightgbm_array(held, ts.feature_names, categories)
    params = {"learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50, "seed": 0, "verbosity": -1}
    fit = lgb.train({**params, "objective": "regression"}, lgb.Dataset(x_train, train.effect.to_numpy()), 300)
    out: dict = {"ceiling": fit.predict(x_held)}
    for kind in ("persuadable", "annoyed"):
        is_kind = (train.customer_type == kind).to_numpy().astype(int)
        clf = lgb.train({**params, "objective": "binary"}, lgb.Dataset(x_train, is_kind), 300)
        out[f"auc_{kind}"] = float(roc_auc_score(held.customer_type == kind, clf.predict(x_held)))
    return out


def one_company(customers: int, target_pct: float, seed: int) -> dict:
    ts = cached_training_set(customers, target_pct, seed)
    truth = pd.read_parquet(company_root(customers, target_pct, seed) / "truth" / "campaigns.parquet")
    truth["campaign_id"] = truth.campaign_id.astype(str)
    truth["effect"] = truth.p_churn_not_contacted - truth.p_churn_contacted
    frame = ts.frame.merge(
        truth[["customer_id", "campaign_id", "effect", "customer_type"]], on=["customer_id", "campaign_id"]
    )
    test_ids = ts.campaigns[-max(1, round(0.2 * len(ts.campaigns))) :]  # as evaluate_out_of_time splits
    test = frame.campaign_id.isin(test_ids)
    train, held = frame[~test], frame[test]
    scores, seconds = {}, {}
    for estimator in ESTIMATORS:
        started = time.perf_counter()
        model = fit_uplift(train, ts.feature_names, ts.categorical_features, estimator=estimator, seed=0)
        seconds[estimator] = round(time.perf_counter() - started, 1)
        scores[estimator] = model.predict(None, held)
        if estimator == "t":
            scores["risk"] = model.churn_probabilities(held)[0]
    bounds = truth_bounds(train, held, ts)
    scores["ceiling"] = bounds.pop("ceiling")
    scores["random"] = np.random.default_rng(seed).random(len(held))
    scores["oracle"] = held.effect.to_numpy()
    effect, treated, churned = held.effect.to_numpy(), held.treated.to_numpy(), held.label.to_numpy()
    out = {"customers": customers, "target_pct": target_pct, "seed": seed, "training_rows": int((~test).sum()),
           "test_targets": len(held), "test_campaigns": test_ids, "seconds_fit": seconds, **bounds}  # fmt: skip
    for name in RANKINGS:
        score = np.asarray(scores[name], dtype=np.float64)
        order = np.argsort(-score, kind="stable")
        for share in TARGET_SHARES:
            k = int(share * len(held))
            out[f"saved_per_contact_top{int(share * 100)}pct_by_{name}"] = float(effect[order[:k]].mean())
        out[f"qini_{name}"] = qini_curve(score, treated, churned).coefficient()
        out[f"correlation_true_effect_{name}"] = float(np.corrcoef(score, effect)[0, 1])
    return out


def main() -> None:
    results = [one_company(*company) for company in COMPANIES]
    table = Table(
        title="Uplift: true customers saved per 100 contacts on held-out campaigns (Qini: from observed outcomes)",
        title_justify="left",
    )
    for column in ("company", "ranking", *(f"top {s:.0%}" for s in TARGET_SHARES), "Qini", "corr"):
        table.add_column(column, justify="left" if column in ("company", "ranking") else "right")
    for r in results:
        company = f"{r['customers'] // 1000}k/{r['target_pct']}%/s{r['seed']}"
        for name in RANKINGS:
            table.add_row(company, name,
                          *(f"{100 * r[f'saved_per_contact_top{int(s * 100)}pct_by_{name}']:.2f}" for s in TARGET_SHARES),
                          f"{r[f'qini_{name}']:.1f}", f"{r[f'correlation_true_effect_{name}']:.3f}")  # fmt: skip
        table.add_section()
    console = Console(width=max(Console().width, 110))
    console.print(table)
    for r in results:
        console.print(
            f"{r['customers']:,} customers, seed {r['seed']}: {r['training_rows']:,} training targets, "
            f"{r['test_targets']:,} held out; AUC of the type from the features: persuadable "
            f"{r['auc_persuadable']:.3f}, annoyed {r['auc_annoyed']:.3f}; fit seconds {r['seconds_fit']}"
        )
    atomic_write_json({"months": MONTHS, "results": results}, OUT / "uplift.json")
