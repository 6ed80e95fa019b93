"""What a retention campaign changed: churn of the contacted (treatment) against the held-out (control)
customers, per campaign and tier, with confidence intervals, incremental customers saved, contact
conversion and return on the offer's cost.

Estimator. In one cell (a campaign's tier) treatment and control are random draws from the same list, so the
difference of their churn rates, control minus treated, estimates the churn the contact prevented per
treated customer (the average effect on the treated); times the treated count it is the customers saved.
Its interval is Newcombe's hybrid score interval (method 10: Wilson intervals of both rates combined), which
keeps its coverage on small cells and rates near 0 where the plain Wald interval does not. A campaign's total
(and the total of all campaigns) adds its cells' saves, each estimated within its own tier, so tiers held out
at different shares are not mixed (no Simpson's paradox); its interval is the normal one of that sum, from
the cells' Wald variances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

ALL = "all"  # the tier (and campaign) label of a total row

# Columns of `campaign_effects`' result, in order.
EFFECT_COLUMNS = (
    "campaign_id",
    "risk_tier",
    "as_of",
    "treated",
    "control",
    "churn_rate_treated",
    "churn_rate_control",
    "uplift",
    "uplift_low",
    "uplift_high",
    "saved",
    "saved_low",
    "saved_high",
    "contact_conversion",
    "value_saved",
    "offer_cost",
    "roi",
)


def wilson_interval(successes: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (elementwise; nan where n = 0)."""
    successes, n = np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = successes / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def uplift_interval(
    churned_c: np.ndarray, n_c: np.ndarray, churned_t: np.ndarray, n_t: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control minus treated churn rate and its Newcombe hybrid score interval (method 10)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p_c = np.asarray(churned_c, dtype=np.float64) / n_c
        p_t = np.asarray(churned_t, dtype=np.float64) / n_t
    lc, uc = wilson_interval(churned_c, n_c, z)
    lt, ut = wilson_interval(churned_t, n_t, z)
    d = p_c - p_t
    low = d - np.sqrt((p_c - lc) ** 2 + (ut - p_t) ** 2)
    high = d + np.sqrt((uc - p_c) ** 2 + (p_t - lt) ** 2)
    return d, low, high


def campaign_effects(contacts: pd.DataFrame, *, offer_cost: float, confidence: float = 0.95) -> pd.DataFrame:
    """Per campaign and tier, then per campaign (tier `all`) and over every campaign (campaign `all`).

    `contacts`: one row per campaign target with `campaign_id`, `risk_tier` (None allowed), `as_of` (the
    date churn is measured after), `group` (treatment/control), `churned` (0/1 within the horizon),
    `responded` (bool, missing for control or when not recorded) and `value` (what keeping the customer is
    worth). `offer_cost` is the cost of contacting one treated customer. Rates and uplifts are shares (0-1).
    """
    z = float(norm.ppf(0.5 + confidence / 2))
    frame = contacts.assign(
        risk_tier=contacts["risk_tier"].astype(object).where(contacts["risk_tier"].notna(), "-"),
        treated=(contacts["group"] == "treatment").astype(np.int64),
        churned=contacts["churned"].astype(np.int64),
    )
    frame["control"] = 1 - frame["treated"]
    frame["churned_t"] = frame["churned"] * frame["treated"]
    frame["churned_c"] = frame["churned"] * frame["control"]
    frame["value_t"] = frame["value"].astype(np.float64) * frame["treated"]
    frame["asked"] = frame["responded"].notna() & (frame["treated"] == 1)
    frame["yes"] = frame["responded"].astype("boolean").fillna(False).astype(bool) & frame["asked"]
    cells = (
        frame.groupby(["campaign_id", "risk_tier"], sort=True)
        .agg(
            as_of=("as_of", "min"),
            treated=("treated", "sum"),
            control=("control", "sum"),
            churned_t=("churned_t", "sum"),
            churned_c=("churned_c", "sum"),
            value_t=("value_t", "sum"),
            asked=("asked", "sum"),
            yes=("yes", "sum"),
        )
        .reset_index()
    )
    d, low, high = uplift_interval(cells.churned_c, cells.control, cells.churned_t, cells.treated, z)
    cells["uplift"], cells["uplift_low"], cells["uplift_high"] = d, low, high
    cells["saved"] = d * cells.treated
    cells["saved_low"], cells["saved_high"] = low * cells.treated, high * cells.treated
    with np.errstate(invalid="ignore", divide="ignore"):
        p_t = cells.churned_t / cells.treated
        p_c = cells.churned_c / cells.control
        # Wald variance of the cell's saves, for the totals (a cell without both groups adds nothing measurable)
        cells["_var"] = cells.treated**2 * (p_t * (1 - p_t) / cells.treated + p_c * (1 - p_c) / cells.control)
    totals = [_total(cells, ["campaign_id"], z), _total(cells.assign(campaign_id=ALL), ["campaign_id"], z)]
    out = pd.concat([cells, *totals], ignore_index=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["churn_rate_treated"] = out.churned_t / out.treated
        out["churn_rate_control"] = out.churned_c / out.control
        out["contact_conversion"] = out.yes / out.asked
        mean_value = out.value_t / out.treated
    out["value_saved"] = out.saved * mean_value
    out["offer_cost"] = out.treated * float(offer_cost)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["roi"] = np.where(out.offer_cost > 0, (out.value_saved - out.offer_cost) / out.offer_cost, np.nan)
    # each campaign's tiers, then its total; the total of every campaign last
    out = out.assign(_last=out.campaign_id.eq(ALL), _total=out.risk_tier.eq(ALL))
    out = out.sort_values(["_last", "campaign_id", "_total", "risk_tier"], kind="mergesort")
    return out[list(EFFECT_COLUMNS)].reset_index(drop=True)


def _total(cells: pd.DataFrame, by: list[str], z: float) -> pd.DataFrame:
    """Sum of the cells' saves per `by` with the normal interval of the sum (cells without both groups left out
    of the estimate; their customers still count in the totals)."""
    measurable = cells.treated.gt(0) & cells.control.gt(0)
    est = cells.assign(
        saved=cells.saved.where(measurable, 0.0),
        _var=cells._var.where(measurable, 0.0),
        _t=cells.treated.where(measurable, 0),
    )
    sums = ["treated", "control", "churned_t", "churned_c", "value_t", "asked", "yes", "saved", "_var", "_t"]
    total = est.groupby(by, sort=True).agg({**{c: "sum" for c in sums}, "as_of": "min"}).reset_index()
    half = z * np.sqrt(total._var)
    total["saved_low"], total["saved_high"] = total.saved - half, total.saved + half
    with np.errstate(invalid="ignore", divide="ignore"):
        t = total._t.astype(np.float64)
        total["uplift"] = total.saved / t
        total["uplift_low"], total["uplift_high"] = total.saved_low / t, total.saved_high / t
    total["risk_tier"] = ALL
    return total.drop(columns=["_t"])
