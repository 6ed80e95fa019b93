"""The oracle: each customer's true probability of churning within a horizon, from the simulator's truth.

`true_churn_probability` reads the realised weekly hazard path the simulator stored (`hazard.parquet` in the
truth folder) and turns it into P(churn in (as_of, as_of + horizon]) with the daily hazard of each week,
handling windows that start or end inside a week.

It is CLAIRVOYANT ABOUT THE CUSTOMER'S FUTURE STATE, NOT ABOUT THE COIN FLIP: it uses the hazard the customer
actually had on every day of the window (their future engagement, errors, price rise, failed payments ...),
which no model can know at `as_of`. So it is an upper bound on what a model can reach, not a model to
beat. The stored path goes on after a churn (as the hazard the customer would have had, had they stayed),
so a churn inside the window does not shorten the path the probability is computed from, and the path's
length reveals nothing. Customers who churned on or before `as_of` get probability 0; days before a
customer's first at-risk week (their signup week) add no hazard.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.simulator.company import TRUTH_CUSTOMERS, TRUTH_HAZARD, TRUTH_META


def _sql_path(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def true_churn_probability(
    truth_dir: Path, customer_ids: object, as_of: dt.date, horizon_days: int
) -> np.ndarray:
    """P(churn_date in (as_of, as_of + horizon_days]) per customer, in the order of `customer_ids`.

    Computed with DuckDB over the stored hazard path (one aggregate, no loop over customers). The window
    must end by the last simulated day. Raises ConfigError for a missing truth folder, an out-of-range
    window, or ids the simulated company does not have.
    """
    truth_dir = Path(truth_dir)
    meta_path = truth_dir / TRUTH_META
    if not meta_path.is_file():
        raise ConfigError(
            f"no simulator ground truth in {truth_dir} (missing {TRUTH_META}); point data.oracle at the truth "
            f"folder `churn simulate` wrote (default <data>_truth)"
        )
    meta = json.loads(meta_path.read_text())
    start, end = dt.date.fromisoformat(meta["start_date"]), dt.date.fromisoformat(meta["end_date"])
    if horizon_days < 1:
        raise ConfigError(f"horizon_days must be at least 1, got {horizon_days}")
    window_end = as_of + dt.timedelta(days=horizon_days)
    if as_of < start - dt.timedelta(days=1) or window_end > end:
        raise ConfigError(
            f"oracle window ({as_of}, {window_end}] is outside the simulated period {start} .. {end}; "
            f"choose as_of and horizon so the window ends by {end}"
        )
    ids = np.asarray(customer_ids, dtype=np.int64)
    requested = pa.table({"pos": pa.array(np.arange(len(ids), dtype=np.int64)), "customer_id": pa.array(ids)})
    con = duckdb.connect()
    try:
        con.register("requested", requested)
        unknown = con.execute(
            f"SELECT COUNT(*), LIST(customer_id ORDER BY customer_id)[1:3] FROM requested "
            f"ANTI JOIN read_parquet({_sql_path(truth_dir / TRUTH_CUSTOMERS)}) USING (customer_id)"
        ).fetchone()
        if unknown[0]:
            raise ConfigError(
                f"{unknown[0]:,} customer ids are not in the simulated company of {truth_dir} "
                f"(e.g. {', '.join(map(str, unknown[1]))}); pass ids of the company this truth folder belongs to"
            )
        # Days of week [ws, ws + 6] inside the window [first, last], each with daily log-survival
        # log(1 - hazard) / 7.
        first, last = as_of + dt.timedelta(days=1), window_end
        result = con.execute(
            f"""
            WITH path AS (
                SELECT h.customer_id,
                       GREATEST(0, date_diff('day', GREATEST(h.week_start, $first),
                                             LEAST(h.week_start + 6, $last)) + 1) AS days,
                       h.hazard
                FROM read_parquet({_sql_path(truth_dir / TRUTH_HAZARD)}) AS h
                SEMI JOIN requested USING (customer_id)
                WHERE h.week_start BETWEEN $first - 6 AND $last
            ),
            surv AS (
                SELECT customer_id, SUM(days * LN(1 - CAST(hazard AS DOUBLE))) / 7 AS log_survival
                FROM path GROUP BY customer_id
            )
            SELECT r.pos,
                   CASE WHEN c.churn_date <= $as_of THEN 0.0 ELSE 1 - EXP(COALESCE(s.log_survival, 0)) END AS p
            FROM requested r
            JOIN read_parquet({_sql_path(truth_dir / TRUTH_CUSTOMERS)}) c USING (customer_id)
            LEFT JOIN surv s USING (customer_id)
            ORDER BY r.pos
            """,
            {"first": first, "last": last, "as_of": as_of},
        ).fetchnumpy()
    finally:
        con.close()
    return np.clip(result["p"].astype(np.float64), 0.0, 1.0)


def snapshot_probabilities(cfg: Config, frame: pd.DataFrame) -> tuple[np.ndarray | None, str | None]:
    """The simulator's true churn probabilities of the rows of `frame` (per snapshot), or None and why not."""
    if cfg.data.oracle is None:
        return None, None
    if cfg.label.kind != "cancellation":
        return None, f"oracle skipped: it knows cancellation risk, the label is '{cfg.label.kind}'"
    truth = Path(cfg.data.oracle)
    if not truth.exists():
        raise ConfigError(
            f"data.oracle {truth} does not exist: point it at the simulator's ground-truth folder or set it to null"
        )
    out = np.empty(len(frame), dtype=np.float64)
    snap = pd.to_datetime(frame["snapshot_date"]).dt.date.to_numpy()
    ids = frame["customer_id"].to_numpy()
    for day in sorted(set(snap)):  # a handful of test snapshots
        mask = snap == day
        out[mask] = np.asarray(
            true_churn_probability(truth, ids[mask], day, cfg.label.horizon_days), dtype=np.float64
        )
    return out, None


def oracle_for(cfg: Config) -> Callable[[pd.DataFrame], tuple[np.ndarray | None, str | None]] | None:
    """The oracle the training and evaluation stages report beside the model, when `data.oracle` is set."""
    return None if cfg.data.oracle is None else partial(snapshot_probabilities, cfg)
