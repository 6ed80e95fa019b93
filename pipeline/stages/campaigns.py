"""`churn campaign-report`: every retention campaign in the `campaigns` table measured against its control
group (churn within the label horizon after the list's as-of date), written under the workdir and logged to
MLflow.

A campaign's as-of date is the day before its first contact (lists are scored as of a day and contacted
after it); churn is the model's own label (`label.kind`, `label.horizon_days`) at that date, so a campaign is
measured only once its horizon has elapsed in the data. Customers no longer labelled at the as-of date (they
left before the contact) are counted apart, in both groups alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churn_pipeline.core.artifacts import CAMPAIGN_REPORT_FILE, CAMPAIGNS_DIR
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.data.io import Source, atomic_write_parquet, atomic_write_text
from churn_pipeline.features.labels import churn_labels
from churn_pipeline.models.campaign_effect import ALL, campaign_effects
from churn_pipeline.stages.score import customer_table, customer_value, validated_source
from churn_pipeline.stages.tracking import log_campaign_report

CONFIDENCE = 0.95


@dataclass(frozen=True)
class CampaignReport:
    """The measured campaigns (`campaign_effects` rows), those still inside their horizon, and where it went."""

    data_end_date: dt.date
    horizon_days: int
    confidence: float
    effects: pd.DataFrame
    in_progress: tuple[str, ...]
    left_before_contact: int
    paths: tuple[Path, ...]
    run_id: str | None = None

    @property
    def overall(self) -> pd.Series | None:
        """The total of every measured campaign (None when none is measurable yet)."""
        rows = self.effects[(self.effects.campaign_id == ALL) & (self.effects.risk_tier == ALL)]
        return None if rows.empty else rows.iloc[0]


def campaign_as_of(contacts: pd.DataFrame) -> pd.Series:
    """Per campaign_id: the day before its first contact."""
    first = pd.to_datetime(contacts.groupby("campaign_id", sort=True)["ts"].min())
    return (first.dt.normalize() - pd.Timedelta(days=1)).dt.date


def labelled_contacts(source: Source, contacts: pd.DataFrame, cfg: Config) -> tuple[pd.DataFrame, int]:
    """Each contact with its `as_of` and `churned` label; contacts of customers unlabelled then are dropped
    (their count returned)."""
    as_of = campaign_as_of(contacts)
    frames = []
    for date in sorted(set(as_of)):  # one label query per campaign date, not per customer
        labels = churn_labels(source.tables, date, cfg.label).to_pandas()
        ids = as_of.index[as_of == date]
        part = contacts[contacts.campaign_id.isin(ids)].merge(labels, on="customer_id", how="inner")
        frames.append(part.assign(as_of=date, churned=part.pop("label")))
    labelled = pd.concat(frames, ignore_index=True) if frames else contacts.head(0)
    return labelled, len(contacts) - len(labelled)


def run_campaign_report(cfg: Config) -> CampaignReport:
    """Measure every campaign whose horizon has elapsed, write the report, log it to MLflow."""
    report = measured_campaigns(cfg, validated_source(cfg, None))
    out = Path(cfg.workdir) / CAMPAIGNS_DIR
    parquet, csv = out / f"{CAMPAIGN_REPORT_FILE}.parquet", out / f"{CAMPAIGN_REPORT_FILE}.csv"
    atomic_write_parquet(report.effects, parquet)
    atomic_write_text(report.effects.to_csv(index=False), csv)
    return log_campaign_report(cfg, dataclasses.replace(report, paths=(parquet, csv)))


def measured_campaigns(cfg: Config, source: Source) -> CampaignReport:
    """Every campaign of `source` whose horizon has elapsed, measured against its control group (nothing
    written; `paths` empty). ConfigError naming the table to add when the source has no campaigns."""
    if source.tables.campaigns is None:
        raise ConfigError(
            f"no campaigns table in {cfg.data.source_label}: add campaigns.parquet (or .csv) with customer_id, ts, "
            "campaign_id, group (treatment/control) and optionally offer, responded, risk_tier; the at-risk "
            "list's `group` column says who was held out"
        )
    columns = [c for c in ("customer_id", "ts", "campaign_id", "group", "responded", "risk_tier")
               if c in source.tables.campaigns.columns]  # fmt: skip
    contacts = source.tables.campaigns.select(columns).to_pandas()
    for optional in ("responded", "risk_tier"):
        if optional not in contacts:
            contacts[optional] = None
    horizon = cfg.label.horizon_days
    as_of = campaign_as_of(contacts)
    done = as_of[as_of + dt.timedelta(days=horizon) <= source.data_end_date]
    in_progress = tuple(str(c) for c in as_of.index.difference(done.index))
    labelled, left = labelled_contacts(source, contacts[contacts.campaign_id.isin(done.index)], cfg)
    customers = customer_table(source, cfg.scoring.value_column)
    value, _ = customer_value(customers, labelled["customer_id"], cfg)
    effects = campaign_effects(
        labelled.assign(value=np.nan_to_num(value, nan=0.0)),
        offer_cost=cfg.evaluation.offer_cost,
        confidence=CONFIDENCE,
    )
    return CampaignReport(
        data_end_date=source.data_end_date,
        horizon_days=horizon,
        confidence=CONFIDENCE,
        effects=effects,
        in_progress=in_progress,
        left_before_contact=left,
        paths=(),
    )
