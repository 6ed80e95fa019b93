"""Uplift benchmark: does ranking campaign targets by the T-learner's uplift save more customers per contact
than ranking them by risk? Measured against the simulator's truth (both potential outcomes of every target)
on the latest campaigns, which the model never saw.

A 100,000-customer company over 18 months runs a campaign every 4 weeks from month 6 on its own riskiest 10%
(half held out); `churn train-uplift`'s training set and out-of-time split are used as they are. For each
ranking (by uplift, by risk = the control arm's P(churn), at random, and the oracle's true effect) the mean
true effect of the top 10/20/50% of the held-out targets is the customers saved per contact.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.common import OUT
from churn_pipeline.core.config import Config, LabelConfig, SimulationConfig
from churn_pipeline.data.io import atomic_directory, atomic_write_json
from churn_pipeline.models.uplift import fit_uplift
from churn_pipeline.stages.score import validated_source
from churn_pipeline.stages.uplift import TARGET_SHARES, uplift_training_set

CUSTOMERS, MONTHS, SEEDS = 100_000, 18, (2, 3)


def simulation(seed: int) -> SimulationConfig:
    return SimulationConfig(
        customers=CUSTOMERS,
        months=MONTHS,
        seed=seed,
        campaigns={"every_weeks": 4, "first_month": 6, "target_pct": 10, "control_pct": 50},
    )


def one_company(seed: int) -> dict:
    from churn_pipeline.simulator.company import simulate_company

    root = OUT / f"uplift-{CUSTOMERS}-{MONTHS}m-seed{seed}"
    if not (root / "truth" / "campaigns.parquet").is_file():
        with atomic_directory(root) as tmp:
            simulate_company(simulation(seed), tmp / "data", tmp / "truth", progress=True)
    cfg = Config(
        workdir=root / "work",
        data={"source": root / "data"},
        label=LabelConfig(kind="cancellation", horizon_days=28),  # the contact acts for 4 weeks
        simulation=simulation(seed),
    )
    started = time.perf_counter()
    ts = uplift_training_set(cfg, validated_source(cfg, None))
    test_ids = ts.campaigns[-max(1, round(0.2 * len(ts.campaigns))) :]  # as evaluate_out_of_time splits
    test = ts.frame.campaign_id.isin(test_ids)
    model = fit_uplift(ts.frame[~test], ts.feature_names, ts.categorical_features, seed=cfg.model.seed)
    seconds = time.perf_counter() - started
    held = ts.frame[test]
    p_not, p_yes = model.churn_probabilities(held)
    truth = pd.read_parquet(root / "truth" / "campaigns.parquet")
    truth["campaign_id"] = truth.campaign_id.astype(str)
    truth["effect"] = truth.p_churn_not_contacted - truth.p_churn_contacted
    held = held[["customer_id", "campaign_id"]].assign(uplift=p_not - p_yes, risk=p_not)
    held = held.merge(truth[["customer_id", "campaign_id", "effect"]], on=["customer_id", "campaign_id"])
    rng = np.random.default_rng(seed)
    rankings = {
        "uplift": held.uplift,
        "risk": held.risk,
        "random": pd.Series(rng.random(len(held))),
        "oracle": held.effect,
    }
    out = {"seed": seed, "training_rows": int((~test).sum()), "test_targets": len(held), "test_campaigns": test_ids,
           "seconds_build_and_fit": round(seconds, 1), "correlation_uplift_true_effect": float(np.corrcoef(held.uplift, held.effect)[0, 1])}  # fmt: skip
    for name, score in rankings.items():
        order = np.argsort(-score.to_numpy(), kind="stable")
        effect = held.effect.to_numpy()[order]
        for share in TARGET_SHARES:
            k = int(share * len(held))
            out[f"saved_per_contact_top{int(share * 100)}pct_by_{name}"] = float(effect[:k].mean())
    return out


def main() -> None:
    results = [one_company(seed) for seed in SEEDS]
    table = Table(
        title="Uplift: true customers saved per 100 contacts on held-out campaigns", title_justify="left"
    )
    table.add_column("seed")
    table.add_column("ranking")
    for share in TARGET_SHARES:
        table.add_column(f"top {share:.0%}", justify="right")
    for r in results:
        for name in ("uplift", "risk", "random", "oracle"):
            table.add_row(str(r["seed"]), name,
                          *(f"{100 * r[f'saved_per_contact_top{int(s * 100)}pct_by_{name}']:.2f}" for s in TARGET_SHARES))  # fmt: skip
        table.add_section()
    Console().print(table)
    atomic_write_json({"customers": CUSTOMERS, "months": MONTHS, "results": results}, OUT / "uplift.json")
    Console().print(
        json.dumps([{k: v for k, v in r.items() if "top20" in k or k == "seed"} for r in results])
    )
