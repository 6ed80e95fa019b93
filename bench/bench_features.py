"""Benchmark: one as-of feature build on the 1M-customer x 24-month company, against a pandas baseline.

Times (a) the pipeline's way: `open_source` + `churn_pipeline.stages.training_set.compute_features` (the ibis feature
table executed by DuckDB, converted to pandas and checked at the boundary), i.e. what `churn features`
costs apart from contract validation (timed on its own: the baseline validates nothing), and (b) a
straightforward pandas implementation of the same features: load the Parquet files with pandas, filter by
the as-of date, one groupby per family and window. Both run in this process, one after the other; the frames must agree on
every feature column both produce. Prints both times and the ratio; writes bench/out/features.json.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.common import OUT, company_dir, ensure_company
from churn_pipeline.core.config import Config, FeatureConfig
from churn_pipeline.data.io import atomic_write_json, open_source
from churn_pipeline.features.activity import TRENDS
from churn_pipeline.features.payments import PRICE_LOOKBACK_DAYS, PRICE_RISE_MIN_PCT
from churn_pipeline.features.surveys import DETRACTOR_MAX_NPS
from churn_pipeline.stages.training_set import compute_features

CUSTOMERS, MONTHS = 1_000_000, 24
CFG = FeatureConfig(
    important_event_types=("login", "purchase"),
    event_types=("login", "purchase", "error"),
)
PIPELINE_CFG = Config(features=CFG)
WAIT_FOR_COMPANY_SECONDS = 1800
IBIS_RUNS = 3


# ---------------------------------------------------------------------------------------------- pandas


def pandas_features(data_dir: Path, as_of: dt.date, cfg: FeatureConfig) -> pd.DataFrame:
    """The feature table computed with plain pandas (the baseline; same definitions as `features/`)."""
    t = pd.Timestamp(as_of)
    cut = t + pd.Timedelta(days=1)

    def start(days: int) -> pd.Timestamp:
        return cut - pd.Timedelta(days=days)

    def days_ago(ts: pd.Series) -> pd.Series:
        return (t - ts.dt.normalize()).dt.days.astype("float64")

    customers = pd.read_parquet(data_dir / "customers.parquet")
    for col in ("signup_date", "churn_date"):
        customers[col] = pd.to_datetime(customers[col])
    active = customers[
        (customers.signup_date <= t) & (customers.churn_date.isna() | (customers.churn_date > t))
    ]
    out = pd.DataFrame(index=pd.Index(active["customer_id"].to_numpy(), name="customer_id"))
    a = active.set_index("customer_id")
    out["tenure_days"] = (t - a["signup_date"]).dt.days.astype("float64")
    for col in customers.columns.drop(["customer_id", "signup_date", "churn_date"]):
        s = a[col]
        if (
            pd.api.types.is_bool_dtype(s)
            or pd.api.types.is_string_dtype(s)
            or isinstance(s.dtype, pd.CategoricalDtype)
        ):
            out[col] = s.astype(str).str.lower() if pd.api.types.is_bool_dtype(s) else s.astype(str)
        elif pd.api.types.is_numeric_dtype(s):
            out[col] = s.astype("float64")
    parts: list[pd.DataFrame | pd.Series] = []

    # events: recency over the whole history, activity over the last 90 days
    ev = pd.read_parquet(data_dir / "events.parquet")
    ev = ev[ev.ts < cut]
    g = ev.groupby("customer_id").ts
    parts.append(days_ago(g.max()).rename("days_since_last_event"))
    for x in cfg.important_event_types:
        parts.append(
            days_ago(ev[ev.event_type == x].groupby("customer_id").ts.max()).rename(f"days_since_last_{x}")
        )
    span = max(*cfg.windows, 90)
    recent = ev[ev.ts >= start(span)].copy()
    del ev
    recent["day"] = recent.ts.dt.normalize()
    counts: dict[int, pd.Series] = {}
    for w in sorted({*cfg.windows, 7, 30, 90}):
        sub = recent[recent.ts >= start(w)]
        by = sub.groupby("customer_id")
        counts[w] = by.size()
        if w in cfg.windows:
            parts.append(counts[w].rename(f"events_{w}d"))
            for x in cfg.event_types:
                parts.append(
                    sub[sub.event_type == x].groupby("customer_id").size().rename(f"events_{x}_{w}d")
                )
            parts.append(by.day.nunique().rename(f"active_days_{w}d"))
            parts.append(by.amount.sum(min_count=1).rename(f"spend_{w}d"))
    for name, recent_days, newest, oldest in TRENDS:
        before = counts[oldest].sub(counts[newest], fill_value=0) if newest else counts[oldest]
        idx = counts[oldest].index
        ratio = (counts[recent_days].reindex(idx, fill_value=0) / recent_days) / (
            before.reindex(idx) / (oldest - newest)
        )
        parts.append(ratio.replace([np.inf, -np.inf], np.nan).rename(name))
    del recent

    # support contacts and complaints
    sc = pd.read_parquet(data_dir / "support_contacts.parquet")
    sc = sc[sc.ts < cut]
    parts.append(days_ago(sc.groupby("customer_id").ts.max()).rename("days_since_last_contact"))
    resolved = sc.resolved_ts.notna() & (sc.resolved_ts < cut)
    answered = sc.response_minutes.notna() & (
        sc.ts + pd.to_timedelta((sc.response_minutes * 60).round(), unit="s") < cut
    )
    parts.append(sc[~resolved].groupby("customer_id").size().rename("open_contacts"))
    parts.append(
        sc[sc.is_complaint & ~resolved].groupby("customer_id").size().rename("unresolved_complaints")
    )
    parts.append(
        days_ago(sc[sc.is_complaint].groupby("customer_id").ts.max()).rename("days_since_last_complaint")
    )
    for w in cfg.windows:
        sub = sc[sc.ts >= start(w)]
        parts.append(sub.groupby("customer_id").size().rename(f"contacts_{w}d"))
        for ch in cfg.support_channels:
            parts.append(sub[sub.channel == ch].groupby("customer_id").size().rename(f"contacts_{ch}_{w}d"))
        ans = sub[answered.loc[sub.index]].groupby("customer_id").response_minutes
        parts += [
            ans.mean().rename(f"response_minutes_mean_{w}d"),
            ans.max().rename(f"response_minutes_max_{w}d"),
        ]
        scored = sub[resolved.loc[sub.index] & sub.csat.notna()].groupby("customer_id").csat
        parts += [
            scored.mean().rename(f"csat_mean_{w}d"),
            scored.min().astype("float64").rename(f"csat_min_{w}d"),
        ]
        parts.append(sub[sub.is_complaint].groupby("customer_id").size().rename(f"complaints_{w}d"))
    del sc

    # surveys: last and previous answer (same instant: highest score first)
    sv = pd.read_parquet(data_dir / "surveys.parquet")
    sv = sv[sv.ts < cut].sort_values(["customer_id", "ts", "nps"], ascending=[True, False, False])
    by = sv.groupby("customer_id")
    last, prev = by.nth(0).set_index("customer_id"), by.nth(1).set_index("customer_id")
    parts.append(last.nps.astype("float64").rename("nps_last"))
    parts.append((last.nps <= DETRACTOR_MAX_NPS).astype("int64").rename("nps_detractor"))
    parts.append((last.nps - prev.nps.reindex(last.index)).astype("float64").rename("nps_change"))
    parts.append(days_ago(last.ts).rename("days_since_last_survey"))
    del sv

    # payments
    pm = pd.read_parquet(data_dir / "payments.parquet")
    pm = pm[pm.ts < cut]
    paid = pm[pm.status == "paid"]
    parts.append(days_ago(paid.groupby("customer_id").ts.max()).rename("days_since_last_payment"))
    for w in cfg.windows:
        parts.append(
            pm[(pm.status == "failed") & (pm.ts >= start(w))]
            .groupby("customer_id")
            .size()
            .rename(f"failed_payments_{w}d")
        )
    for w in cfg.windows:
        parts.append(
            paid[paid.ts >= start(w)].groupby("customer_id").amount.sum().rename(f"paid_amount_{w}d")
        )
    paid = paid.sort_values(["customer_id", "ts"])
    last_amount = paid.groupby("customer_id").amount.last()
    earlier = (
        paid[paid.ts < start(PRICE_LOOKBACK_DAYS)]
        .groupby("customer_id")
        .amount.last()
        .reindex(last_amount.index)
    )
    change = (last_amount - earlier) * 100.0 / earlier.replace(0, np.nan)
    parts += [
        last_amount.rename("last_paid_amount"),
        change.rename("price_change_pct"),
        (change > PRICE_RISE_MIN_PCT).astype("int64").rename("price_rise"),
    ]
    del pm, paid

    out = out.join([p.to_frame() if isinstance(p, pd.Series) else p for p in parts], how="left")
    zero = [
        c
        for c in out.columns
        if c.startswith(
            (
                "events_",
                "active_days_",
                "spend_",
                "contacts_",
                "complaints_",
                "failed_payments_",
                "paid_amount_",
            )
        )
        and not c.startswith("events_trend")
    ]
    zero += ["open_contacts", "unresolved_complaints", "nps_detractor", "price_rise"]
    out[zero] = out[zero].fillna(0)
    return out.reset_index()


# ---------------------------------------------------------------------------------------------- compare


def compare(ours: pd.DataFrame, theirs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(columns compared, columns that disagree) on the common feature columns, aligned by customer."""
    a = ours.set_index("customer_id").sort_index()
    b = theirs.set_index("customer_id").sort_index()
    if not a.index.equals(b.index):
        return [], ["customer_id (different customers)"]
    common = [c for c in a.columns if c in b.columns]
    bad = []
    for c in common:
        x, y = a[c], b[c]
        if isinstance(x.dtype, pd.CategoricalDtype) or x.dtype == object:
            if not x.astype(str).equals(y.astype(str)):
                bad.append(c)
        else:
            xv, yv = (
                x.to_numpy(dtype="float64", na_value=np.nan),
                y.to_numpy(dtype="float64", na_value=np.nan),
            )
            if not np.allclose(xv, yv, rtol=1e-9, atol=1e-9, equal_nan=True):
                bad.append(c)
    return common, bad


def _wait_for_company() -> Path:
    """The simulator benchmark produces the company; wait for it rather than simulating a second one."""
    root = company_dir(CUSTOMERS, MONTHS)
    deadline = time.monotonic() + WAIT_FOR_COMPANY_SECONDS
    while not (root / "data" / "customers.parquet").is_file() and time.monotonic() < deadline:
        time.sleep(10)
    data, _ = ensure_company(CUSTOMERS, MONTHS)  # simulates only if it never appeared
    return data


def main() -> None:
    run(_wait_for_company(), OUT / "features.json")


def run(data_dir: Path, json_path: Path | None) -> dict:
    """Time both implementations on one data source; print the table; write `json_path` if given."""
    console = Console()

    started = time.perf_counter()
    validated = open_source(data_dir)  # what every stage does first; timed on its own
    validate_seconds = time.perf_counter() - started
    as_of = validated.data_end_date
    del validated

    # The machine is shared: take the median of a few builds (pandas, at ~50 s, runs once).
    load_before = os.getloadavg()[0]
    runs = []
    for _ in range(IBIS_RUNS):
        started = time.perf_counter()
        source = open_source(data_dir, validate=False)
        ours = compute_features(PIPELINE_CFG, as_of, source)  # the production path, boundary checks included
        runs.append(time.perf_counter() - started)
        del source
        gc.collect()
    ibis_seconds = statistics.median(runs)

    started = time.perf_counter()
    theirs = pandas_features(data_dir, as_of, CFG)
    pandas_seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    compared, disagree = compare(ours, theirs)
    ratio = pandas_seconds / ibis_seconds
    table = Table(title=f"features as of {as_of}: {data_dir}", title_justify="left")
    table.add_column("implementation")
    table.add_column("seconds", justify="right")
    table.add_column("rows", justify="right")
    table.add_column("features", justify="right")
    table.add_row(
        f"ibis + DuckDB (open + build + to pandas; median of {IBIS_RUNS})",
        f"{ibis_seconds:.1f}",
        f"{len(ours):,}",
        str(ours.shape[1] - 1),
    )
    table.add_row(
        "pandas groupby (load + filter + groupby)",
        f"{pandas_seconds:.1f}",
        f"{len(theirs):,}",
        str(theirs.shape[1] - 1),
    )
    table.add_section()
    table.add_row("[bold]speed-up (pandas / ibis)[/]", f"[bold]{ratio:.1f}x[/]", "", "")
    table.add_section()
    table.add_row("contract validation (every stage, once per run)", f"{validate_seconds:.1f}", "", "")
    console.print(table)
    verdict = "[green]agree[/]" if compared and not disagree else f"[red]DISAGREE on {disagree}[/]"
    target = "met" if ibis_seconds < 30 and ratio >= 10 else "MISSED"
    console.print(
        f"{len(compared)} feature columns compared: {verdict}; target (< 30 s and >= 10x): {target}; "
        f"ibis runs {', '.join(f'{r:.1f}' for r in runs)} s; load average {load_before:.1f}; "
        f"peak RSS {peak_rss_mb:,.0f} MB"
    )
    figures = {
        "as_of": as_of,
        "rows": len(ours),
        "features": ours.shape[1] - 1,
        "ibis_seconds": round(ibis_seconds, 2),
        "ibis_runs_seconds": [round(r, 2) for r in runs],
        "validate_seconds": round(validate_seconds, 2),
        "pandas_seconds": round(pandas_seconds, 2),
        "speedup": round(ratio, 2),
        "columns_compared": len(compared),
        "columns_disagreeing": disagree,
        "target_met": target == "met",
        "peak_rss_mb": round(peak_rss_mb, 1),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "data": str(data_dir),
    }
    if json_path is not None:
        atomic_write_json(figures, json_path)
    return figures


if __name__ == "__main__":
    main()
