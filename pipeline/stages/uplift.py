"""`churn train-uplift`: an uplift model learnt from the measured campaigns (features as of each campaign's list
date, churn within the label horizon, treated or held out), judged out of time on the latest campaigns
against ranking by risk, refitted on every campaign and registered as `<tracking.registered_model>-uplift`
(alias `champion` when its out-of-time Qini coefficient is positive), for `scoring.rank_by: saved_value`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import Source
from churn_pipeline.models.uplift import QiniCurve, UpliftModel, fit_uplift, qini_curve
from churn_pipeline.stages.campaigns import campaign_as_of, labelled_contacts
from churn_pipeline.stages.score import validated_source
from churn_pipeline.stages.tracking import log_uplift_run
from churn_pipeline.stages.training_set import compute_features, in_customer_order

TARGET_SHARES = (0.1, 0.2, 0.5)  # the shares of a campaign's targets the out-of-time figures are read at
MIN_TRAINING_CAMPAIGNS = 2


@dataclass(frozen=True)
class UpliftTrainingSet:
    """One row per measured campaign target: features as of the campaign's list date, `treated`, `label`."""

    frame: pd.DataFrame
    feature_names: list[str]
    categorical_features: list[str]
    campaigns: list[str]  # measured campaigns, oldest first


@dataclass(frozen=True)
class UpliftEvaluation:
    """Out-of-time: Qini curves on the held-out latest campaigns, ranking by uplift and by risk."""

    test_campaigns: list[str]
    rows: int
    by_uplift: QiniCurve
    by_risk: QiniCurve
    shares: tuple[float, ...] = TARGET_SHARES

    def figures(self) -> dict[str, float]:
        """Qini coefficients and the customers saved at each share of targets, per ranking."""
        out = {}
        for name, curve in (("uplift", self.by_uplift), ("risk", self.by_risk)):
            out[f"test_qini_{name}"] = curve.coefficient()
            for share in self.shares:
                out[f"test_saved_top{int(share * 100)}pct_by_{name}"] = curve.saved_at(share)
        return out


@dataclass(frozen=True)
class UpliftResult:
    training_set: UpliftTrainingSet
    evaluation: UpliftEvaluation
    model: UpliftModel
    version: str | None
    promoted: bool
    reason: str
    run_id: str | None


def uplift_training_set(cfg: Config, source: Source) -> UpliftTrainingSet:
    """Every target of every campaign whose horizon is over, with its features as of the campaign's list date."""
    if source.tables.campaigns is None:
        raise ConfigError(
            f"no campaigns table in {cfg.data.source_label}: an uplift model learns from past campaigns with control "
            "groups (see README 'Campaign results'); rank by risk until there are some"
        )
    contacts = source.tables.campaigns.select("customer_id", "ts", "campaign_id", "group").to_pandas()
    as_of = campaign_as_of(contacts)
    done = as_of[as_of + dt.timedelta(days=cfg.label.horizon_days) <= source.data_end_date]
    labelled, _ = labelled_contacts(source, contacts[contacts.campaign_id.isin(done.index)], cfg)
    parts, categorical = [], []
    for date in sorted(set(done)):  # one feature table per campaign date
        features = compute_features(cfg, date, source)
        categorical = [c for c in features.columns if isinstance(features[c].dtype, pd.CategoricalDtype)]
        rows = labelled[labelled.as_of == date]
        parts.append(
            rows[["customer_id", "campaign_id", "as_of", "group", "churned"]].merge(
                features, on="customer_id"
            )
        )
    if len(parts) < MIN_TRAINING_CAMPAIGNS + 1:
        raise ConfigError(
            f"{len(parts)} campaign(s) measured so far (horizon {cfg.label.horizon_days} days); an uplift model needs "
            f"at least {MIN_TRAINING_CAMPAIGNS + 1}: {MIN_TRAINING_CAMPAIGNS} to learn from and the latest to judge it on"
        )
    frame = in_customer_order(pd.concat(parts, ignore_index=True)).sort_values("as_of", kind="stable")
    frame = frame.assign(
        treated=(frame.pop("group") == "treatment").astype(np.int8),
        label=frame.pop("churned").astype(np.int8),
    )
    names = [c for c in frame.columns if c not in ("customer_id", "campaign_id", "as_of", "treated", "label")]
    order = done.sort_values(kind="stable").index.tolist()
    return UpliftTrainingSet(frame.reset_index(drop=True), names, categorical, order)


def evaluate_out_of_time(ts: UpliftTrainingSet, seed: int) -> UpliftEvaluation:
    """Fit on every campaign but the latest ~20% (at least one), rank the held-out targets by uplift and by
    risk (P(churn) if not contacted, the churn model's question) and compare their Qini curves."""
    n_test = max(1, round(0.2 * len(ts.campaigns)))
    test_ids = ts.campaigns[-n_test:]
    test = ts.frame.campaign_id.isin(test_ids)
    model = fit_uplift(ts.frame[~test], ts.feature_names, ts.categorical_features, seed=seed)
    held = ts.frame[test]
    p_not, _ = model.churn_probabilities(held)
    t, y = held.treated.to_numpy(), held.label.to_numpy()
    return UpliftEvaluation(
        test_ids, int(test.sum()), qini_curve(model.predict(None, held), t, y), qini_curve(p_not, t, y)
    )


def run_uplift_training(cfg: Config) -> UpliftResult:
    """Build the campaign training set, judge the X-learner out of time, refit on every campaign, register."""
    source = validated_source(cfg, None)
    ts = uplift_training_set(cfg, source)
    evaluation = evaluate_out_of_time(ts, cfg.model.seed)
    model = fit_uplift(ts.frame, ts.feature_names, ts.categorical_features, seed=cfg.model.seed)
    figures = evaluation.figures()
    model.metadata.update({k: float(v) for k, v in figures.items()})
    model.metadata["test_campaigns"] = evaluation.test_campaigns
    qini = figures["test_qini_uplift"]
    promoted = qini > 0
    reason = (
        f"out-of-time Qini coefficient {qini:.4f} > 0 on {', '.join(evaluation.test_campaigns)}: the ranking saves "
        "more than random targeting"
        if promoted
        else f"out-of-time Qini coefficient {qini:.4f} <= 0: no better than random targeting; not promoted"
    )
    version, run_id = log_uplift_run(cfg, ts, evaluation, model, promoted, reason)
    return UpliftResult(ts, evaluation, model, version, promoted, reason, run_id)
