"""Does the simulated company behave the way the retention literature says churn happens?

All checks run on the shared 3,000-customer x 12-month company (seed 11) and compare groups, so a simulator
whose behaviour does not drive churn fails them.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

START, END = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-12-31")


def monthly_churn(customers: pd.DataFrame) -> pd.DataFrame:
    """Per calendar month: customers active at its start (end of the day before), and how many churned in it."""
    signup = pd.to_datetime(customers["signup_date"])
    churn = pd.to_datetime(customers["churn_date"])
    rows = []
    for month in pd.date_range(START, END, freq="MS"):
        nxt = month + pd.offsets.MonthBegin(1)
        active = (signup < month) & (churn.isna() | (churn >= month))
        rows.append({"month": month, "active": active.sum(), "churned": (active & (churn < nxt)).sum()})
    df = pd.DataFrame(rows)
    df["rate"] = df["churned"] / df["active"]
    return df


def reference_windows(customers: pd.DataFrame) -> pd.DataFrame:
    """Churners (churning from April on) with their churn date, and long-standing stayers each given a
    churner's date (deterministically): the same calendar windows for both groups."""
    c = customers.assign(
        signup_date=pd.to_datetime(customers["signup_date"]),
        churn_date=pd.to_datetime(customers["churn_date"]),
    )
    churners = c.loc[c["churn_date"] >= "2024-04-01", ["customer_id", "churn_date"]].rename(
        columns={"churn_date": "ref"}
    )
    stayers = c.loc[c["churn_date"].isna() & (c["signup_date"] < START), ["customer_id"]].copy()
    stayers["ref"] = churners["ref"].to_numpy()[stayers["customer_id"].to_numpy() % len(churners)]
    return pd.concat([churners.assign(churner=True), stayers.assign(churner=False)], ignore_index=True)


def mean_count_in_window(rows: pd.DataFrame, ref: pd.DataFrame, days_before: tuple[int, int]) -> pd.Series:
    """Mean number of rows per customer with ts in [ref - far, ref - near), by churner/stayer."""
    far, near = days_before
    m = rows[["customer_id", "ts"]].merge(ref, on="customer_id")
    m = m[(m["ts"] >= m["ref"] - pd.Timedelta(days=far)) & (m["ts"] < m["ref"] - pd.Timedelta(days=near))]
    n = ref.merge(m.groupby("customer_id").size().rename("n"), on="customer_id", how="left")["n"].fillna(0)
    return n.groupby(ref["churner"]).mean()


@pytest.fixture(scope="module")
def ref(frames) -> pd.DataFrame:
    r = reference_windows(frames.customers)
    assert r["churner"].sum() > 300 and (~r["churner"]).sum() > 300
    return r


def test_monthly_churn_rate_inside_the_target_band(company, frames):
    lo, hi = company.config.simulation.target_monthly_churn
    months = monthly_churn(frames.customers)
    assert lo <= months["rate"].mean() <= hi
    assert months["rate"].between(lo / 2, hi * 1.5).all()  # no month wildly off
    assert frames.meta["observed_monthly_churn"] == pytest.approx(months["rate"].mean(), rel=1e-9)


def test_active_base_stays_roughly_stable(frames):
    active = monthly_churn(frames.customers)["active"]
    assert active.min() > 0.75 * active.max()


def test_churners_are_less_active_before_churn(frames, ref):
    activity = frames.events[frames.events["event_type"].isin(["login", "feature_use", "purchase"])]
    n = mean_count_in_window(activity, ref, (56, 28))
    assert n[True] < 0.85 * n[False], n


def test_churners_contact_support_and_complain_more_before_churn(frames, ref):
    sc = frames.support_contacts
    contacts = mean_count_in_window(sc, ref, (56, 28))
    complaints = mean_count_in_window(sc[sc["is_complaint"]], ref, (56, 28))
    assert contacts[True] > 1.25 * contacts[False], contacts
    assert complaints[True] > 1.3 * complaints[False], complaints
    # ... and contacts rise further as churn approaches.
    last_weeks = mean_count_in_window(sc, ref, (28, 0))
    assert last_weeks[True] > contacts[True] and last_weeks[True] > 1.5 * last_weeks[False]


def test_churners_see_more_product_errors_before_churn(frames, ref):
    errors = mean_count_in_window(frames.events[frames.events["event_type"] == "error"], ref, (56, 0))
    assert errors[True] > 1.2 * errors[False], errors


def test_failed_payments_raise_churn(frames):
    pay = frames.payments.merge(frames.customers[["customer_id", "churn_date"]], on="customer_id")
    pay = pay[(pay["ts"] >= "2024-02-01") & (pay["ts"] < "2024-11-01")]
    churn = pd.to_datetime(pay["churn_date"])
    churn_next_30d = (churn > pay["ts"]) & (churn <= pay["ts"] + pd.Timedelta(days=30))
    rate = churn_next_30d.groupby(pay["status"]).mean()
    assert (pay["status"] == "failed").sum() > 100
    assert rate["failed"] > 5 * rate["paid"], rate
    involuntary = frames.truth_customers["churn_kind"].value_counts()
    assert 0.05 < involuntary["involuntary"] / involuntary.sum() < 0.5


def test_loyalty_members_churn_less(frames):
    c = frames.customers
    churned = c["churn_date"].notna()
    assert churned[c["loyalty_member"]].mean() < 0.8 * churned[~c["loyalty_member"]].mean()
    # Not only because members hold longer contracts: also among monthly contracts.
    monthly = c["contract"] == "monthly"
    assert (
        churned[monthly & c["loyalty_member"]].mean() < 0.85 * churned[monthly & ~c["loyalty_member"]].mean()
    )


def test_contracts_and_tenure_matter(frames):
    c = frames.customers
    churned = c["churn_date"].notna().groupby(c["contract"]).mean()
    assert churned["monthly"] > 1.5 * churned["annual"]
    assert churned["annual"] > churned["two_year"]
    # Annual contracts churn mostly near their renewal (last 5 weeks before an anniversary).
    annual = c[(c["contract"] == "annual") & c["churn_date"].notna()]
    tenure = (pd.to_datetime(annual["churn_date"]) - pd.to_datetime(annual["signup_date"])).dt.days
    near_renewal = (tenure % 365) >= 365 - 42
    assert near_renewal.mean() > 0.4  # 6 weeks of 52 would be 0.12 without a renewal effect
    # Risk falls with tenure: customers in their first half year churn faster than those over two years.
    hz = frames.hazard.merge(c[["customer_id", "signup_date"]], on="customer_id")
    tenure_days = (pd.to_datetime(hz["week_start"]) - pd.to_datetime(hz["signup_date"])).dt.days
    assert hz.loc[tenure_days < 180, "hazard"].median() > 1.3 * hz.loc[tenure_days > 730, "hazard"].median()


def test_price_rise_raises_churn(frames):
    t = frames.truth_customers[["customer_id", "price_rise_date"]].merge(frames.customers, on="customer_id")
    rise = pd.to_datetime(t["price_rise_date"])
    churn = pd.to_datetime(t["churn_date"])
    # Customers still there at their rise: churn in the 8 weeks after it, vs everybody's baseline.
    at_rise = rise.notna() & (churn.isna() | (churn > rise))
    after = ((churn > rise) & (churn <= rise + pd.Timedelta(days=56)))[at_rise].mean()
    baseline = monthly_churn(frames.customers)["rate"].mean() * 56 / 30.4
    assert after > 1.3 * baseline, (after, baseline)


def test_slow_unresolved_and_badly_rated_support_precede_churn(frames):
    """Customers whose contact went badly churn more in the following 60 days than those whose went well."""
    sc = frames.support_contacts.merge(frames.customers[["customer_id", "churn_date"]], on="customer_id")
    sc = sc[sc["ts"] < "2024-10-15"]
    churn = pd.to_datetime(sc["churn_date"])
    soon = (churn > sc["ts"]) & (churn <= sc["ts"] + pd.Timedelta(days=60))
    bad = sc["is_complaint"] & sc["resolved_ts"].isna() | (sc["csat"] <= 2)
    good = sc["csat"] >= 4
    assert bad.sum() > 50 and good.sum() > 50
    assert soon[bad].mean() > 1.5 * soon[good].mean(), (soon[bad].mean(), soon[good].mean())


def test_hazard_truth_matches_realised_churn(frames):
    """Sum of the stored weekly hazards over the weeks customers were at risk = expected churns."""
    hz = frames.hazard.merge(frames.customers[["customer_id", "churn_date"]], on="customer_id")
    week = pd.to_datetime(hz["week_start"])
    churn = pd.to_datetime(hz["churn_date"])
    at_risk = churn.isna() | (week <= churn)
    days = np.minimum(7, (END + pd.Timedelta(days=1) - week).dt.days)  # the last week may be partial
    expected = (1 - (1 - hz["hazard"].astype(float)) ** (days / 7))[at_risk].sum()
    realised = frames.customers["churn_date"].notna().sum()
    assert realised == pytest.approx(expected, rel=0.1)
    # And higher hazard weeks really are where churn happens.
    churn_week = at_risk & churn.notna() & (churn < week + pd.Timedelta(days=7))
    high = hz["hazard"] > hz.loc[at_risk, "hazard"].quantile(0.9)
    assert churn_week[high & at_risk].mean() > 4 * churn_week[~high & at_risk].mean()


def test_volumes_are_sane(frames):
    """Events per customer-month in the range that keeps 1M customers x 24 months at 40-100M events
    (about 13M customer-months)."""
    customer_months = monthly_churn(frames.customers)["active"].sum()
    assert 3 < len(frames.events) / customer_months < 7.5
    assert len(frames.support_contacts) < 0.1 * len(frames.events)
    assert len(frames.payments) < 0.5 * len(frames.events)
    assert 0 < len(frames.surveys) < len(frames.support_contacts)
    assert dt.date(2024, 12, 31) >= frames.events["ts"].max().date() >= dt.date(2024, 12, 30)
