"""Nightly scoring on Spark (`data.engine: spark`): the same run as `score`, with the per-customer work on the
executors and only the at-risk list on the driver.

What runs where:
- executors: the feature table (the ibis expressions compiled to Spark SQL), the predictions (`mapInPandas`
  with the ChurnModel broadcast once), the drift bin counts (`models.drift.drift_bin_counts` per partition),
  the ranking (a global sort; ranks from each partition's offset), the output checks over every score, the
  reasons of the listed customers (a second `mapInPandas` over only them), and writing `scores.parquet/`
  (a folder of Parquet parts, in rank order);
- driver: the BG/NBD fit (a maximum-likelihood fit over every active customer's 3-number summary, collected;
  the two columns it gives are joined back), the per-partition bin counts and row counts (a few numbers per
  partition), the listed customers' rows (list size x 12 columns) from which the at-risk list is built with
  the same pure steps as DuckDB scoring (`score.at_risk_list`: tiers, control group, values), and publishing.

Reasons run on the executors rather than on the driver: they need each listed customer's whole feature row,
list size x ~80 columns, which is the one input that could grow large with a big list; the text they give is
small. The outputs equal DuckDB scoring's for the same data and model (tests/spark/test_scoring.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn_pipeline.core.artifacts import SCORES_COLUMNS
from churn_pipeline.core.config import Config, ScoringConfig
from churn_pipeline.core.errors import ConfigError, DataValidationError
from churn_pipeline.data.io import Source
from churn_pipeline.data.spark import spark_frame, spark_session
from churn_pipeline.features.btyd import EXPECTED_EVENTS, P_ALIVE, SUMMARY_COLUMNS, add_btyd_columns
from churn_pipeline.features.build import feature_table
from churn_pipeline.features.labels import labelled_customers
from churn_pipeline.models.churn_model import ChurnModel
from churn_pipeline.models.drift import drift_bin_counts, psi_from_bin_counts, reference_trend
from churn_pipeline.models.reasons import reason_columns, reasons_and_actions
from churn_pipeline.stages.score import (
    RunContext,
    ScoringResult,
    at_risk_list,
    customer_table,
    customer_value,
    list_size,
    publish_run,
    run_counts,
    value_at_risk,
)
from churn_pipeline.stages.score_checks import check_drift, check_model_features, check_outputs
from churn_pipeline.stages.training_set import btyd_on

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


def score_on_spark(run: RunContext) -> ScoringResult:
    """Score every active customer of `run` on Spark and publish the outputs (all or nothing, as on DuckDB)."""
    cfg, model, steps = run.cfg, run.model, run.steps
    broadcast = spark_session().sparkContext.broadcast(model)  # shipped once to each executor
    features = None
    try:
        with steps.step("features"):
            features = spark_scoring_features(cfg, run.source, run.as_of)
            n = check_feature_frame(features, run.as_of)  # the first action: computed and persisted here
        check_model_features(
            model.feature_names,
            [c for c in features.columns if c != "customer_id"],
            cfg.features,
            f"model {cfg.tracking.registered_model} v{run.version}",
        )
        with steps.step("drift check"):
            psi = spark_feature_psi(model, features, n)
            drift = check_drift(psi, cfg.scoring.drift, reference_trend(model.reference))
        with steps.step("predict"):
            scores = ranked_scores(features, model, broadcast, run)
        size = list_size(n, cfg, model.metadata)
        with steps.step("reasons"):
            top = scores.filter(scores["rank"] <= size.customers).orderBy("rank").toPandas()
            top["as_of"] = top["as_of"].astype(
                "date32[pyarrow]"
            )  # as DuckDB scoring types it (a Parquet DATE)
            reasons = spark_listed_reasons(broadcast, features, top, cfg.scoring)
            customers = customer_table(run.source, cfg.scoring.value_column, only=top["customer_id"])
            value, value_origin = customer_value(customers, top["customer_id"], cfg)
            at_risk = at_risk_list(top, reasons, value, cfg.scoring)
        with steps.step("checks"):
            check_outputs(top, at_risk, customers, run.as_of)  # the list, whole
            mean_probability = check_spark_scores(scores, run.source, run.as_of)  # every score
        counts = run_counts(n, mean_probability, at_risk)
        manifest = run.manifest(counts, size, value_at_risk(at_risk, value_origin), drift)
        return publish_run(run, functools.partial(_write_parts, scores), at_risk, manifest, psi)
    finally:
        if features is not None:
            features.unpersist()
        broadcast.unpersist()


# ------------------------------------------------------------------------------------------- features


def spark_scoring_features(cfg: Config, source: Source, as_of: dt.date) -> DataFrame:
    """The feature table of the customers to score at `as_of` as a Spark DataFrame (persisted: it is read
    by the drift counts, the predictions and the reasons), in the columns and population of
    `score.scoring_features`."""
    expr = feature_table(source.tables, as_of, cfg.features)
    features = spark_frame(source.con, expr)
    if btyd_on(source, cfg):
        features = with_btyd_on_spark(features, cfg)
    if (
        cfg.label.kind == "inactivity"
    ):  # as `score.scoring_features`: after the BG/NBD fit over everyone active
        population = spark_frame(source.con, labelled_customers(source.tables, as_of, cfg.label))
        features = features.join(population, "customer_id", "left_semi")
    return features.persist()


def with_btyd_on_spark(features: DataFrame, cfg: Config) -> DataFrame:
    """`features` with the BG/NBD columns of `features.btyd.add_btyd_columns`, fitted on the driver.

    The fit is a maximum likelihood over every active customer's summary (3 numbers each, collected); the
    two columns it gives are joined back by customer_id.
    """
    features = features.persist()  # read twice: the summaries, then the join
    summaries = features.select("customer_id", *SUMMARY_COLUMNS).toPandas()
    fitted = add_btyd_columns(summaries, cfg.label.horizon_days, cfg.features.btyd_max_fit_customers)
    columns = fitted[["customer_id", P_ALIVE, EXPECTED_EVENTS]]
    schema = f"customer_id {features.schema['customer_id'].dataType.simpleString()}, {P_ALIVE} double, {EXPECTED_EVENTS} double"
    btyd = spark_session().createDataFrame(columns, schema=schema)
    joined = features.join(btyd, "customer_id", "left").persist()
    joined.count()  # materialised: the table without the columns is no longer needed
    features.unpersist()
    return joined


def check_feature_frame(features: DataFrame, as_of: dt.date) -> int:
    """The boundary checks of an executed feature table (`training_set.compute_features`), as one Spark
    aggregation: customers present and unique, no infinite value. Returns the number of customers."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    floats = [f.name for f in features.schema.fields if isinstance(f.dataType, DoubleType | FloatType)]
    row = features.agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct("customer_id").alias("ids"),
        *[
            F.sum(F.when(F.abs(F.col(c)) == float("inf"), 1).otherwise(0)).alias(f"inf_{i}")
            for i, c in enumerate(floats)
        ],
    ).first()
    n, ids = int(row["n"]), int(row["ids"])
    problems = []
    if n == 0:
        raise ConfigError(
            f"no customer is active at the as-of date {as_of}; choose an as-of date inside the data"
        )
    if ids != n:
        problems.append(f"feature table as of {as_of}: customer_id is not unique ({n - ids} repeated ids)")
    bad = [c for i, c in enumerate(floats) if row[f"inf_{i}"]]
    if bad:
        problems.append(
            f"feature table as of {as_of}: infinite values in {bad}; ratios must divide by NULLIF(x, 0)"
        )
    if problems:
        raise DataValidationError(problems)
    return n


# ------------------------------------------------------------------------------------ drift and predictions


def spark_feature_psi(model: ChurnModel, features: DataFrame, n: int) -> pd.Series:
    """`score.feature_psi` on Spark: each partition counts its rows per drift bin (`drift_bin_counts`, the
    same binning as DuckDB scoring), the driver sums the counts and computes the PSI."""
    if not model.reference or not model.reference.get("features"):
        log.warning("the model carries no drift reference: drift check skipped")
        return pd.Series(dtype=float, name="psi")
    reference = model.reference
    names = list(reference["features"])
    rows = (
        features.select(*names)
        .mapInPandas(
            functools.partial(_bin_counts, reference=reference), "feature string, counts array<bigint>"
        )
        .collect()
    )
    counts: dict[str, np.ndarray] = {}
    for r in rows:
        part = np.asarray(r["counts"], dtype=np.int64)
        counts[r["feature"]] = counts[r["feature"]] + part if r["feature"] in counts else part
    return psi_from_bin_counts(reference, counts, n)


def _bin_counts(batches: Iterator[pd.DataFrame], reference: dict) -> Iterator[pd.DataFrame]:
    for batch in batches:
        if len(batch):
            counts = drift_bin_counts(reference, batch)
            yield pd.DataFrame({"feature": list(counts), "counts": [c.tolist() for c in counts.values()]})


def _probabilities(batches: Iterator[pd.DataFrame], model: Any) -> Iterator[pd.DataFrame]:
    churn_model: ChurnModel = model.value  # the broadcast, unpickled once per Python worker
    for batch in batches:
        if len(batch):
            p = np.asarray(churn_model.predict(None, batch), dtype=np.float64)
            yield pd.DataFrame({"customer_id": batch["customer_id"].to_numpy(), "churn_probability": p})


def ranked_scores(features: DataFrame, model: ChurnModel, broadcast: Any, run: RunContext) -> DataFrame:
    """`score.rank_scores` on Spark: every customer's probability, rank (probability descending, ties by
    customer_id), percentile, as-of date and model version, in rank order across the partitions.

    The global sort spreads the rows over range partitions; each row's rank is its partition's offset (the
    rows of the partitions before it, counted per partition) plus its position inside the partition. The
    sorted rows are checkpointed first, so the positions counted are the positions ranked.
    """
    from pyspark.sql import functions as F

    id_type = features.schema["customer_id"].dataType.simpleString()
    probability = (
        features.select("customer_id", *model.feature_names)
        .mapInPandas(
            functools.partial(_probabilities, model=broadcast),
            f"customer_id {id_type}, churn_probability double",
        )
        .localCheckpoint(eager=True)  # predicted once: the sort below samples its input before sorting it
    )
    ordered = (
        probability.orderBy(F.col("churn_probability").desc(), F.col("customer_id").asc())
        .withColumn("_part", F.spark_partition_id())
        .withColumn("_row", F.monotonically_increasing_id())  # partition id << 33 + position in the partition
        .localCheckpoint(eager=True)
    )
    per_part = ordered.groupBy("_part").agg(F.count(F.lit(1)).alias("rows"), F.min("_row").alias("first"))
    parts = sorted((int(r["_part"]), int(r["rows"]), int(r["first"])) for r in per_part.collect())
    n = sum(rows for _, rows, _ in parts)
    offsets = np.concatenate([[0], np.cumsum([rows for _, rows, _ in parts])[:-1]]).astype(np.int64)
    start = F.create_map(
        *[
            x
            for (p, _, first), off in zip(parts, offsets, strict=True)
            for x in (F.lit(p), F.lit(int(off) - first))
        ]
    )
    rank = (F.col("_row") + start[F.col("_part")] + 1).cast("bigint")
    percentile = F.lit(100.0) * (F.lit(n) - F.col("rank") + 1) / F.lit(max(n, 1))
    return (
        ordered.withColumn("rank", rank)
        .withColumn("percentile", percentile)
        .withColumn("as_of", F.lit(run.as_of))
        .withColumn("model_version", F.lit(run.version))
        .withColumn("uplift", F.lit(None).cast("double"))  # ranked by risk: no uplift (as on DuckDB)
        .withColumn("expected_saved_value", F.lit(None).cast("double"))
        .select(*SCORES_COLUMNS)
    )


# -------------------------------------------------------------------------------------- the list's reasons


def _reasons(batches: Iterator[pd.DataFrame], model: Any, cfg: ScoringConfig) -> Iterator[pd.DataFrame]:
    churn_model: ChurnModel = model.value
    for batch in batches:
        if len(batch):
            contrib = churn_model.contributions(batch, method=cfg.attribution)
            reasons = reasons_and_actions(contrib, batch, cfg)
            reasons.insert(0, "customer_id", batch["customer_id"].to_numpy())
            yield reasons


def spark_listed_reasons(
    broadcast: Any, features: DataFrame, top: pd.DataFrame, cfg: ScoringConfig
) -> pd.DataFrame:
    """`score.listed_reasons` on Spark: reasons and suggested action of each listed customer (the `top` rows
    of the scores), computed on the executors over only the listed customers' feature rows with the model
    `broadcast`, in list order."""
    from pyspark.sql import functions as F

    session = spark_session()
    id_type = features.schema["customer_id"].dataType.simpleString()
    listed_ids = session.createDataFrame(top[["customer_id"]], schema=f"customer_id {id_type}")
    listed = features.join(F.broadcast(listed_ids), "customer_id", "left_semi")
    columns = [*reason_columns(), "suggested_action"]
    schema = f"customer_id {id_type}, " + ", ".join(f"{c} string" for c in columns)
    rows = listed.mapInPandas(functools.partial(_reasons, model=broadcast, cfg=cfg), schema).toPandas()
    in_list_order = rows.set_index("customer_id").reindex(top["customer_id"].to_numpy())
    if in_list_order[columns[-1]].isna().any():
        raise DataValidationError(["reasons: a listed customer's feature row was not found on Spark"])
    return in_list_order.reset_index(drop=True)[columns]


# ------------------------------------------------------------------------------------ checks and writing


def check_spark_scores(scores: DataFrame, source: Source, as_of: dt.date) -> float:
    """`score_checks.check_outputs` over every score, as one Spark aggregation: unique ids, probabilities in
    [0, 1], only active customers. Returns the mean probability (for the manifest)."""
    from pyspark.sql import functions as F

    customers = spark_frame(
        source.con, source.tables.customers.select("customer_id", "signup_date", "churn_date")
    )
    joined = scores.join(customers, "customer_id", "left")
    day = F.lit(as_of)
    p = F.col("churn_probability")
    row = joined.agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct("customer_id").alias("ids"),
        F.sum(F.when(p.between(0.0, 1.0) & ~F.isnan(p), 0).otherwise(1)).alias("bad_p"),
        F.sum(F.when((F.col("signup_date") > day) | (F.col("churn_date") <= day), 1).otherwise(0)).alias(
            "inactive"
        ),
        F.avg(p).alias("mean_p"),
    ).first()
    problems = []
    if row["ids"] != row["n"]:
        problems.append(f"scores: customer_id not unique ({row['n'] - row['ids']} repeated ids)")
    if row["bad_p"]:
        problems.append(f"scores: {row['bad_p']} churn_probability value(s) outside [0, 1] (or NaN)")
    if row["inactive"]:
        problems.append(
            f"scores: {row['inactive']} customer(s) not active at {as_of} (churned or not yet signed up)"
        )
    if problems:
        raise DataValidationError([f"scoring output check failed (nothing published): {p}" for p in problems])
    return float(row["mean_p"])


def _write_parts(scores: DataFrame, path: Path) -> None:
    """`publish.ScoresWriter` of Spark scoring: the scores as a folder of Parquet parts, in rank order."""
    scores.write.parquet(str(path))
