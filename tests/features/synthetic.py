"""Small generated sources for the features tests: hand-made frames, random frames, and 'the data as it was at t'."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from churn_pipeline.data.io import Source, source_from_frames

AS_OF = dt.date(2024, 6, 30)  # windows: 7d = 06-24..06-30, 30d = 06-01..06-30, 90d = 04-02..06-30

_DATES = {"signup_date", "churn_date"}
_TIMESTAMPS = {"ts", "resolved_ts"}


def frame(columns: str, rows: Iterable[tuple]) -> pd.DataFrame:
    """A frame from 'col1 col2 ...' and row tuples; date/ts columns parsed, None = missing."""
    df = pd.DataFrame(list(rows), columns=columns.split())
    for c in df.columns:
        if c in _DATES or c in _TIMESTAMPS:
            df[c] = pd.to_datetime(df[c], format="mixed")
    if "csat" in df:
        df["csat"] = df["csat"].astype("Int64")
    if "nps" in df:
        df["nps"] = df["nps"].astype("int64")
    return df


def customers(*rows: tuple) -> pd.DataFrame:
    """Rows of (customer_id, signup_date, churn_date)."""
    return frame("customer_id signup_date churn_date", rows)


def source(**frames: pd.DataFrame) -> Source:
    """A validated source from frames; customers default to ids 1-3 signed up 2024-01-01, never churned."""
    frames.setdefault("customers", customers(*[(i, "2024-01-01", None) for i in (1, 2, 3)]))
    return source_from_frames(frames)


def rows_by_customer(table) -> dict:
    """Execute an ibis table keyed by customer_id into {customer_id: {column: value}} (NaN -> None)."""
    df = table.execute()
    df = df.astype(object).where(df.notna(), None)
    return {r["customer_id"]: r for r in df.to_dict("records")}


# ------------------------------------------------------------------------------------------ random sources


def random_frames(
    seed: int = 0, n_customers: int = 60, start: dt.date = dt.date(2024, 1, 1), days: int = 300
) -> dict[str, pd.DataFrame]:
    """A random but contract-valid company: signups over the first half, ~40% churn, every table populated.

    A fifth of all timestamps fall exactly on midnight, so "end of day t" boundaries are exercised.
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    end = t0 + pd.Timedelta(days=days)
    ids = np.arange(1, n_customers + 1)
    signup = t0 + pd.to_timedelta(rng.integers(0, days // 2, n_customers), unit="D")
    churn_after = pd.to_timedelta(rng.integers(1, days, n_customers), unit="D")
    churn = pd.Series(signup + churn_after)
    churn[(rng.random(n_customers) > 0.4) | (churn > end)] = pd.NaT
    last_day = churn.fillna(end)
    cust = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": signup,
            "churn_date": churn.to_numpy(),
            "plan": rng.choice(["basic", "pro", "premium"], n_customers),
            "monthly_fee": rng.choice([19.0, 39.0, 59.0], n_customers),
            "loyalty_member": rng.random(n_customers) < 0.3,
        }
    )

    # a fifth of the customers go quiet (no more events) some time before they churn or the data ends
    fade = pd.Series(signup + pd.to_timedelta(rng.integers(20, days, n_customers), unit="D"))
    quiet_from = last_day.where((rng.random(n_customers) > 0.2) | (fade > last_day), fade)

    def stamps(owner: np.ndarray, until: pd.Series = last_day) -> pd.Series:
        lo = signup[owner - 1].to_numpy()
        span = (until.to_numpy()[owner - 1] - lo) / pd.Timedelta(seconds=1)
        secs = rng.random(len(owner)) * span
        secs = np.where(rng.random(len(owner)) < 0.2, np.floor(secs / 86400) * 86400, np.floor(secs))
        return pd.Series(lo + pd.to_timedelta(secs, unit="s"))

    def owners(mean: float) -> np.ndarray:
        return np.repeat(ids, rng.poisson(mean, n_customers))

    who = owners(60)
    etype = rng.choice(["login", "feature_use", "purchase", "error"], len(who), p=[0.5, 0.3, 0.1, 0.1])
    events = pd.DataFrame(
        {
            "customer_id": who,
            "ts": stamps(who, quiet_from),
            "event_type": etype,
            "amount": np.where(etype == "purchase", rng.integers(5, 100, len(who)).astype(float), np.nan),
        }
    )

    who = owners(6)
    opened = stamps(who)
    resolved = opened + pd.to_timedelta(rng.exponential(3 * 86400, len(who)).round(), unit="s")
    resolved[rng.random(len(who)) < 0.15] = pd.NaT
    csat = pd.array(
        np.where(resolved.notna() & (rng.random(len(who)) < 0.6), rng.integers(1, 6, len(who)), -1),
        dtype="Int64",
    )
    csat[csat == -1] = pd.NA
    response = rng.exponential(600, len(who)).round(1)
    response[rng.random(len(who)) < 0.1] = np.nan
    contacts = pd.DataFrame(
        {
            "customer_id": who,
            "ts": opened,
            "channel": rng.choice(["chat", "email", "phone"], len(who)),
            "is_complaint": rng.random(len(who)) < 0.3,
            "response_minutes": response,
            "resolved_ts": resolved,
            "csat": csat,
        }
    )

    who = owners(3)
    surveys = pd.DataFrame({"customer_id": who, "ts": stamps(who), "nps": rng.integers(0, 11, len(who))})

    months = ((last_day - pd.Series(signup)).dt.days // 30 + 1).to_numpy()
    who = np.repeat(ids, months)
    k = np.arange(len(who)) - np.repeat(np.cumsum(months) - months, months)
    fee = cust["monthly_fee"].to_numpy()[who - 1]
    rises = rng.random(n_customers) < 0.3
    pay_ts = pd.Series(
        signup[who - 1]
        + pd.to_timedelta(k * 30, unit="D")
        + pd.to_timedelta(rng.integers(0, 86400, len(who)), unit="s")
    )
    amount = np.where(rises[who - 1] & (k >= 4), fee * 1.15, fee)
    payments = pd.DataFrame(
        {
            "customer_id": who,
            "ts": pay_ts,
            "amount": amount.round(2),
            "status": np.where(rng.random(len(who)) < 0.1, "failed", "paid"),
        }
    )
    payments = payments[payments["ts"] <= end].reset_index(drop=True)
    return {
        "customers": cust,
        "events": events,
        "support_contacts": contacts,
        "surveys": surveys,
        "payments": payments,
    }


def as_known_at(frames: dict[str, pd.DataFrame], as_of: dt.date) -> dict[str, pd.DataFrame]:
    """The data as it existed at the end of `as_of`: later rows deleted, later resolutions/scores/churn unknown."""
    cut = pd.Timestamp(as_of + dt.timedelta(days=1))
    out = {}
    for name, df in frames.items():
        df = df.copy()
        if name == "customers":
            df.loc[df["churn_date"] >= cut, "churn_date"] = pd.NaT
        else:
            df = df[df["ts"] < cut].reset_index(drop=True)
        if name == "support_contacts":
            later = df["resolved_ts"] >= cut
            df.loc[later, "csat"] = pd.NA
            df.loc[later, "resolved_ts"] = pd.NaT
            answered_later = df["ts"] + pd.to_timedelta(df["response_minutes"], unit="m") >= cut
            df.loc[answered_later, "response_minutes"] = np.nan
        out[name] = df
    return out


def with_boundary_rows(frames: dict[str, pd.DataFrame], as_of: dt.date) -> dict[str, pd.DataFrame]:
    """Add rows at the exact first instant after `as_of` (midnight) for a few customers active at as_of,
    and contacts opened on day t whose resolution/response falls just after it."""
    cut = pd.Timestamp(as_of + dt.timedelta(days=1))
    c = frames["customers"]
    active = c[
        (c["signup_date"] <= pd.Timestamp(as_of))
        & (c["churn_date"].isna() | (c["churn_date"] > pd.Timestamp(as_of)))
    ]
    ids = active["customer_id"].to_numpy()[:5]
    n = len(ids)
    out = dict(frames)
    out["events"] = pd.concat(
        [
            frames["events"],
            pd.DataFrame(
                {"customer_id": ids, "ts": [cut] * n, "event_type": ["login"] * n, "amount": [np.nan] * n}
            ),
        ],
        ignore_index=True,
    )
    late = pd.DataFrame(
        {
            "customer_id": np.concatenate([ids, ids]),
            "ts": [cut] * n + [cut - pd.Timedelta(minutes=30)] * n,
            "channel": ["chat"] * (2 * n),
            "is_complaint": [True] * (2 * n),
            "response_minutes": [5.0] * n + [45.0] * n,
            "resolved_ts": [cut + pd.Timedelta(hours=1)] * n + [cut] * n,
            "csat": pd.array([1] * (2 * n), dtype="Int64"),
        }
    )
    out["support_contacts"] = pd.concat([frames["support_contacts"], late], ignore_index=True)
    out["surveys"] = pd.concat(
        [frames["surveys"], pd.DataFrame({"customer_id": ids, "ts": [cut] * n, "nps": [0] * n})],
        ignore_index=True,
    )
    out["payments"] = pd.concat(
        [
            frames["payments"],
            pd.DataFrame(
                {"customer_id": ids, "ts": [cut] * n, "amount": [999.0] * n, "status": ["failed"] * n}
            ),
        ],
        ignore_index=True,
    )
    return out
