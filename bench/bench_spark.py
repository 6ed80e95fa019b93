"""Benchmark: DuckDB against Spark local mode on the 1M-customer company, in the same run (issue #13).

Times two commands end to end as a user runs them, each in a fresh `churn` process per run and engine:
`churn features --as-of <data end>` (open + DuckDB contract checks, the feature table, BG/NBD columns, the
Parquet file written) and `churn score` (everything `bench score` times, with the same champion for both
engines: trained first on the 50k-customer company, not timed). The Spark figures include starting the JVM
and the session (`local[2]`, the engine's own local defaults, with a 4 GB driver heap: Spark's default 1 GB
runs out at this size). Peak RSS is that of the whole process tree, sampled every 0.2 s (the Spark driver JVM
is a child of the Python process, its Python workers children of the JVM; a sum of RSS counts pages the
processes share once per process). Runs alternate between the
engines; min / median / max over `BENCH_SPARK_RUNS` runs (default 2). The outputs of the two engines must
agree: feature columns within 1e-9, every score within 1e-9, the same ranks and at-risk list.

How the work splits: every Spark run writes an event log; the last run's is summarised per stage (tasks,
input, shuffle read/write, spill, task-duration skew), and the events table is hashed by customer into 200
partitions to show what one shuffle partition holds at this size. Writes bench/out/spark.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from bench.bench_features import compare
from bench.bench_score import MONTHS, train_champion
from bench.common import OUT, benchmark_config, ensure_company
from bench.spark_metrics import read_event_log, stage_figures, tree_rss_kb
from churn_pipeline.core.artifacts import AT_RISK_FILE, SCORES_FILE, score_dir
from churn_pipeline.core.config import Config
from churn_pipeline.data.io import atomic_write_json, open_source
from churn_pipeline.stages.training_set import feature_table_path

CUSTOMERS = 1_000_000
ENGINES = ("duckdb", "spark")
COMMANDS = ("features", "score")
RUNS = int(os.environ.get("BENCH_SPARK_RUNS", "2"))
WORKDIR = OUT / "spark-work"
HASH_PARTITIONS = 200  # Spark's default spark.sql.shuffle.partitions
POLL_SECONDS = 0.2
# Spark's default heap (1 GB) runs out at this size (java.lang.OutOfMemoryError in the feature build); in
# local mode the driver JVM is also the executor
SPARK_DRIVER_MEMORY = "4g"


def _churn() -> str:
    return str(Path(sys.executable).parent / "churn")


def _write_config(engine: str, data: Path, registry: Path) -> Path:
    """A config file for `engine`: its own workdir, the shared registry (same champion for both engines)."""
    cfg = benchmark_config(WORKDIR / engine, data, None, snapshots=6)
    raw = cfg.model_dump(mode="json", exclude_defaults=True)
    raw["data"]["engine"] = engine
    raw["tracking"] = {"uri": f"sqlite:///{(registry / 'mlflow.db').resolve()}"}
    path = WORKDIR / f"{engine}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _timed(argv: list[str], env: dict[str, str], log: Path) -> dict:
    """Run `argv`, sampling its process tree's RSS; seconds, peak tree RSS (GB), exit code."""
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss_kb(proc.pid))
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {proc.returncode}; see {log}")
    return {"seconds": round(seconds, 2), "peak_rss_gb": round(peak / 1024**2, 3)}


def _env(engine: str, eventlog: Path) -> dict[str, str]:
    env = dict(os.environ, COLUMNS="160")
    if engine == "spark":
        eventlog.mkdir(parents=True, exist_ok=True)
        # read by pyspark when it launches the JVM; the session's own settings are the engine's defaults
        env["PYSPARK_SUBMIT_ARGS"] = (
            f"--driver-memory {SPARK_DRIVER_MEMORY} --conf spark.eventLog.enabled=true --conf spark.eventLog.dir=file://{eventlog} "
            "--conf spark.eventLog.compress=false pyspark-shell"
        )
    return env


def _spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "runs": values}


def _compare_scores(duck: Path, spark: Path) -> dict:
    """How far Spark's published scores and list are from DuckDB's (same champion, same as-of date)."""
    a = pd.read_parquet(duck / SCORES_FILE).sort_values("customer_id", ignore_index=True)
    b = pd.read_parquet(spark / SCORES_FILE).sort_values("customer_id", ignore_index=True)
    same_customers = a["customer_id"].equals(b["customer_id"])
    prob = "churn_probability" if "churn_probability" in a else next(c for c in a if "prob" in c)
    diff = float(np.nanmax(np.abs(a[prob].to_numpy() - b[prob].to_numpy()))) if same_customers else None
    at_risk_a, at_risk_b = pd.read_parquet(duck / AT_RISK_FILE), pd.read_parquet(spark / AT_RISK_FILE)
    try:
        pd.testing.assert_frame_equal(at_risk_a, at_risk_b, check_exact=False, rtol=1e-9, atol=0)
        at_risk_equal = True
    except AssertionError:
        at_risk_equal = False
    return {
        "scored": len(a),
        "same_customers": same_customers,
        "max_abs_probability_difference": diff,
        "ranks_equal": same_customers and a["rank"].equals(b["rank"]),
        "at_risk_rows": len(at_risk_a),
        "at_risk_equal": at_risk_equal,
        "agree": same_customers and diff is not None and diff <= 1e-9 and at_risk_equal,
    }


def _hash_partitions(data: Path) -> dict:
    """Events per customer, and rows per partition when the events are hashed by customer into 200."""
    con = duckdb.connect()
    events = str(data / "events.parquet")
    per_customer = con.sql(
        f"SELECT median(n), max(n), count(*) FROM (SELECT count(*) n FROM '{events}' GROUP BY customer_id)"
    ).fetchone()
    per_part = con.sql(
        f"SELECT median(n), max(n), min(n) FROM (SELECT count(*) n FROM '{events}' "
        f"GROUP BY hash(customer_id) % {HASH_PARTITIONS})"
    ).fetchone()
    return {
        "customers_with_events": per_customer[2],
        "events_per_customer_median": float(per_customer[0]),
        "events_per_customer_max": int(per_customer[1]),
        "partitions": HASH_PARTITIONS,
        "events_per_partition_median": float(per_part[0]),
        "events_per_partition_max": int(per_part[1]),
        "events_per_partition_min": int(per_part[2]),
    }


def main() -> None:
    console = Console()
    data, _ = ensure_company(CUSTOMERS, MONTHS)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    registry = WORKDIR / "registry"
    train_champion(console, registry)  # a fresh registry: no older champion may be what gets timed
    as_of = open_source(data, validate=False).data_end_date
    configs = {engine: _write_config(engine, data, registry) for engine in ENGINES}

    load_before = os.getloadavg()[0]
    runs: dict[str, dict[str, list[dict]]] = {c: {e: [] for e in ENGINES} for c in COMMANDS}
    for i in range(RUNS):
        for command in COMMANDS:
            for engine in ENGINES:
                eventlog = WORKDIR / "eventlog" / f"{command}-{i}"
                argv = [_churn(), command, "--config", str(configs[engine]), "--as-of", as_of.isoformat()]
                console.print(f"run {i + 1}/{RUNS}: churn {command} --engine {engine} ...")
                figures = _timed(argv, _env(engine, eventlog), WORKDIR / f"{command}-{engine}-{i}.log")
                console.print(f"  {figures['seconds']:.1f} s, peak tree RSS {figures['peak_rss_gb']:.2f} GB")
                runs[command][engine].append(figures)

    raw = {"as_of": as_of.isoformat(), "data": str(data), "runs": runs, "load_before": load_before}
    atomic_write_json(raw, WORKDIR / "runs.json")  # summarise() can be rerun from it
    summarise(raw, console)


def summarise(raw: dict, console: Console) -> None:
    """Compare the two engines' outputs, read the last Spark run's event logs, write spark.json, print."""
    as_of, data, runs, load_before = (
        dt.date.fromisoformat(raw["as_of"]),
        Path(raw["data"]),
        raw["runs"],
        raw["load_before"],
    )
    features = {e: pd.read_parquet(feature_table_path(Config(workdir=WORKDIR / e), as_of)) for e in ENGINES}
    compared, disagree = compare(features["duckdb"], features["spark"])
    scores = _compare_scores(score_dir(WORKDIR / "duckdb", as_of), score_dir(WORKDIR / "spark", as_of))
    last = len(runs["score"]["spark"]) - 1
    stages = {
        c: stage_figures(read_event_log(_only_file(WORKDIR / "eventlog" / f"{c}-{last}"))) for c in COMMANDS
    }
    partitions = _hash_partitions(data)

    summary: dict = {
        "as_of": as_of.isoformat(),
        "company": str(data.parent),
        "runs": len(runs["score"]["spark"]),
    }
    for command in COMMANDS:
        per = {}
        for engine in ENGINES:
            per[engine] = {
                "seconds": _spread([r["seconds"] for r in runs[command][engine]]),
                "peak_rss_gb": _spread([r["peak_rss_gb"] for r in runs[command][engine]]),
            }
        per["ratio_spark_over_duckdb"] = round(
            per["spark"]["seconds"]["median"] / per["duckdb"]["seconds"]["median"], 2
        )
        summary[command] = per
    summary.update(
        {
            "feature_rows": len(features["duckdb"]),
            "feature_columns_compared": len(compared),
            "feature_columns_disagreeing": disagree,
            "scores": scores,
            "spark_stages_last_run": stages,
            "spark_stage_totals_last_run": {c: _totals(stages[c]) for c in COMMANDS},
            "events_hashed_by_customer": partitions,
            "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "cpus": os.cpu_count(),
        }
    )
    atomic_write_json(summary, OUT / "spark.json")
    _print(console, summary)


def _only_file(folder: Path) -> Path:
    files = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(files) != 1:
        raise SystemExit(f"expected one Spark event log in {folder}, found {[p.name for p in files]}")
    return files[0]


def _totals(stages: list[dict]) -> dict:
    skewed = [s for s in stages if s["tasks"] >= 2 and s["skew"] is not None]
    return {
        "stages": len(stages),
        "tasks": sum(s["tasks"] for s in stages),
        "input_bytes": sum(s["input_bytes"] for s in stages),
        "shuffle_write_bytes": sum(s["shuffle_write_bytes"] for s in stages),
        "shuffle_read_bytes": sum(s["shuffle_read_bytes"] for s in stages),
        "largest_stage_shuffle_write_bytes": max((s["shuffle_write_bytes"] for s in stages), default=0),
        "spill_bytes": sum(s["spill_bytes"] for s in stages),
        "task_seconds": round(sum(s["task_seconds_sum"] for s in stages), 1),
        "max_skew": max((s["skew"] for s in skewed), default=None),
        "median_skew": round(statistics.median([s["skew"] for s in skewed]), 2) if skewed else None,
    }


def _print(console: Console, s: dict) -> None:
    def mmm(x: dict, fmt: str) -> str:
        return " / ".join(format(x[k], fmt) for k in ("min", "median", "max"))

    table = Table(
        title=f"DuckDB vs Spark local[2], as of {s['as_of']} ({s['runs']} runs each)", title_justify="left"
    )
    for col in ("command", "engine", "seconds (min / median / max)", "peak tree RSS GB", "Spark / DuckDB"):
        table.add_column(col, justify="left" if col in ("command", "engine") else "right")
    for command in COMMANDS:
        for engine in ENGINES:
            f = s[command][engine]
            ratio = f"{s[command]['ratio_spark_over_duckdb']:.1f}x" if engine == "spark" else ""
            table.add_row(
                f"churn {command}", engine, mmm(f["seconds"], ".1f"), mmm(f["peak_rss_gb"], ".2f"), ratio
            )
        table.add_section()
    console.print(table)
    sc = s["scores"]
    ok = "[green]agree[/]" if not s["feature_columns_disagreeing"] and sc["agree"] else "[red]DISAGREE[/]"
    console.print(
        f"outputs {ok}: {s['feature_rows']:,} feature rows, {s['feature_columns_compared']} columns compared "
        f"(disagreeing: {s['feature_columns_disagreeing'] or 'none'}); {sc['scored']:,} scores, largest "
        f"difference {sc['max_abs_probability_difference']}, ranks equal {sc['ranks_equal']}, at-risk list "
        f"({sc['at_risk_rows']:,}) equal {sc['at_risk_equal']}"
    )
    work = Table(title="Spark stages of the last run (event log)", title_justify="left")
    for col in (
        "command",
        "stages",
        "tasks",
        "input MB",
        "shuffle write MB",
        "largest stage MB",
        "spill MB",
        "skew med / max",
    ):
        work.add_column(col, justify="left" if col == "command" else "right")
    for command, t in s["spark_stage_totals_last_run"].items():
        work.add_row(
            command,
            str(t["stages"]),
            str(t["tasks"]),
            f"{t['input_bytes'] / 1e6:,.0f}",
            f"{t['shuffle_write_bytes'] / 1e6:,.0f}",
            f"{t['largest_stage_shuffle_write_bytes'] / 1e6:,.0f}",
            f"{t['spill_bytes'] / 1e6:,.0f}",
            f"{t['median_skew']} / {t['max_skew']}",
        )
    console.print(work)
    p = s["events_hashed_by_customer"]
    console.print(
        f"events hashed by customer into {p['partitions']} partitions: {p['events_per_partition_min']:,} / "
        f"{p['events_per_partition_median']:,.0f} / {p['events_per_partition_max']:,} rows (min / median / max); "
        f"events per customer median {p['events_per_customer_median']:g}, max {p['events_per_customer_max']:,}"
    )
    console.print(f"figures written to {OUT / 'spark.json'}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--summarise"]:  # again from the last measured runs
        summarise(json.loads((WORKDIR / "runs.json").read_text()), Console())
    else:
        main()
