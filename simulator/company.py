"""A simulated subscription company, written as a data source in the input data contract v1.

Behaviour drives churn the way the retention literature describes it. Every customer has a latent
engagement (an AR(1) around a personal level, with occasional downward shocks and rare permanent drops);
activity events follow it. Product-quality episodes raise errors, errors hurt. A share of customers gets a
price rise at some month (visible only in `payments.amount`). Support contacts and complaints are driven by
the same things that drive churn (errors, low engagement, price rises, failed payments), so they rise before
churn. Slow responses and unresolved complaints raise the risk, good CSAT lowers it, loyalty members and
longer-tenured customers churn less, contracts lower the risk except near renewal, and two failed payments
in a row (the monthly charge and its retry) cause involuntary churn.

Time runs in weeks. Each week a customer at risk churns with the weekly hazard computed from the state
above (complementary log-log for the voluntary part, combined with an involuntary part); the churn day
inside the week follows the same hazard spread evenly over the days. The base hazard (intercept) is solved
on a small pre-simulated sample so the monthly churn rate lands in `SimulationConfig.target_monthly_churn`.

Customers are simulated in chunks of `chunk_customers`, all weeks at once per chunk, vectorised over the
customers of the chunk; every table is written chunk by chunk with one `ParquetWriter`, so memory stays
bounded. Same config, same bytes: each chunk draws from its own `SeedSequence` child.

The ground truth (the realised weekly hazard path of every customer, see `simulator.oracle`) goes to a
separate folder the pipeline never reads as input.

Two settings make harder data for benchmarks; both are off by default and then change no byte:

- `simulation.contract: non_contractual`: the same customers, but a business without cancellations (a shop,
  an app). The weekly churn draw becomes a latent dropout that is never written: `churn_date` stays null,
  there is no `payments` table (no subscription charges), the `contract` attribute is written as
  `membership`, and a customer's events (Poisson counts per week at a personal, drifting rate) simply stop at
  the dropout. That is the BG/NBD story (heterogeneous purchase rates while alive, an unobserved dropout)
  with behaviour before the dropout. The truth keeps the dropout day as `churn_date`.
- `simulation.noise`: `label_flip_pct` makes a share of the written cancellations a coin flip (a churner
  among the flipped keeps no `churn_date` although their rows stop; a non-churner gets a `churn_date`
  uniform over their time as a customer and their rows stop there), `attribute_noise_pct` replaces a share of
  each written attribute's values by a random customer's value (behaviour follows the true values), and
  `irrelevant_attributes` adds columns of pure noise. Noise draws come from their own seeds, so the rest of
  the company is the one simulated without noise.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from churn_pipeline.core.config import CampaignSimulationConfig, NoiseConfig, SimulationConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.core.tables import TABLE_NAMES
from churn_pipeline.data.io import atomic_directory

TRUTH_HAZARD = "hazard.parquet"
TRUTH_CUSTOMERS = "customers.parquet"
TRUTH_META = "truth.json"
TRUTH_CAMPAIGNS = "campaigns.parquet"
TRUTH_FILES = (TRUTH_HAZARD, TRUTH_CUSTOMERS, TRUTH_CAMPAIGNS, TRUTH_META, "README.txt")

PLANS = ("basic", "standard", "premium")
CONTRACTS = ("monthly", "annual", "two_year")
REGIONS = ("north", "south", "east", "west", "central")
CHANNELS = ("organic", "paid_search", "social", "referral", "partner")
EVENT_TYPES = ("login", "feature_use", "purchase", "error")
SUPPORT_CHANNELS = ("chat", "email", "phone")
PAYMENT_STATUS = ("paid", "failed")
CHURN_KINDS = ("voluntary", "involuntary")
CAMPAIGN_GROUPS = ("treatment", "control")
CAMPAIGN_TIERS = ("critical", "high", "elevated")  # top 20%, next 30%, the rest of a campaign's targets
# How a customer reacts to a retention contact: persuadable (the offer fixes what drives them away), unaffected
# (lost causes and sure things alike), annoyed ("sleeping dogs": the contact reminds them to leave).
CUSTOMER_TYPES = ("unaffected", "persuadable", "annoyed")
OFFERS = ("loyalty_discount", "priority_support", "billing_help", "re_engagement")

_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
_NEVER = np.int64(1 << 40)  # a day index later than any simulated day
_CALIBRATION_CUSTOMERS = 8_000


@dataclass(frozen=True)
class Behaviour:
    """The simulator's behavioural parameters (documented in the ground truth's truth.json)."""

    plan_share: tuple[float, ...] = (0.5, 0.35, 0.15)
    plan_fee: tuple[float, ...] = (9.99, 19.99, 34.99)
    contract_share: tuple[float, ...] = (0.55, 0.30, 0.15)
    region_share: tuple[float, ...] = (0.22, 0.20, 0.20, 0.20, 0.18)
    channel_share: tuple[float, ...] = (0.30, 0.25, 0.20, 0.15, 0.10)
    # Engagement: personal level by acquisition channel and plan, AR(1) deviation with shocks.
    channel_engagement: tuple[float, ...] = (0.0, -0.15, -0.35, 0.30, 0.10)
    plan_engagement: tuple[float, ...] = (-0.10, 0.05, 0.20)
    engagement_sd: float = 0.45
    ar: float = 0.9
    innovation_sd: float = 0.25
    shock_prob: float = 0.01  # weekly chance of a downward engagement shock
    life_event_prob: float = 0.003  # weekly chance of a permanent drop in the personal level
    life_event_drop: float = 0.6
    # Product quality: episodes of errors (per-customer proneness), leaving with `quality_exit`.
    quality_enter: float = 0.010
    quality_proneness_sd: float = 1.0
    quality_exit: float = 0.25
    # Weekly event rates at engagement 0 (scaled by exp(activity_slope * engagement)).
    login_rate: float = 0.55
    feature_rate: float = 0.35
    purchase_rate: float = 0.045
    error_rate: float = 0.02
    error_rate_bad_quality: float = 1.2
    activity_slope: float = 0.9
    # Payments: monthly charge; a failure is retried a week later.
    card_trouble_share: float = 0.05
    fail_prob: float = 0.01
    fail_prob_card_trouble: float = 0.15
    retry_fail_prob: float = 0.5
    dunning_hazard: float = 0.4  # weekly involuntary churn hazard after two failures in a row
    # Price rises.
    price_rise_share: float = 0.35
    price_rise_pct: tuple[float, float] = (0.08, 0.25)
    # Voluntary hazard, cloglog scale: coefficients on the drivers (intercept is calibrated).
    h_engagement: float = -0.9
    h_errors: float = 0.35
    h_price_persistent: float = 0.35
    h_price_fresh: float = 1.1
    h_failed_payment: float = 0.6
    h_open_complaints: float = 0.6
    h_slow_responses: float = 0.45
    h_csat: float = -0.35  # times (csat - 3): good CSAT lowers the risk
    h_loyalty: float = -0.55
    h_new_customer: float = 1.0  # times exp(-tenure_days / 120)
    h_contract: tuple[float, ...] = (0.0, -2.0, -2.6)
    h_contract_renewal: tuple[float, ...] = (0.0, 1.0, 0.6)  # last 5 weeks before an anniversary
    h_plan: tuple[float, ...] = (0.1, 0.0, -0.1)
    h_region: tuple[float, ...] = (0.0, 0.05, -0.05, 0.1, 0.0)
    # Support.
    contact_rate: float = 0.010
    contact_errors: float = 1.2
    contact_low_engagement: float = 1.2
    survey_rate: float = 0.012


B = Behaviour()


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation wrote: rows and bytes per table, the period, the observed churn, the time taken."""

    customers: int
    rows: dict[str, int]
    bytes: dict[str, int]
    truth_bytes: int
    start_date: dt.date
    end_date: dt.date
    monthly_churn_rate: float
    target_monthly_churn: tuple[float, float]
    base_log_hazard: float
    seconds: float
    out_dir: Path
    truth_dir: Path

    def to_dict(self) -> dict:
        """JSON-friendly form (dates and paths as strings)."""
        d = asdict(self)
        for k in ("start_date", "end_date"):
            d[k] = d[k].isoformat()
        for k in ("out_dir", "truth_dir"):
            d[k] = str(d[k])
        d["target_monthly_churn"] = list(self.target_monthly_churn)
        return d


# ------------------------------------------------------------------------------------------- timeline


def _add_months(d: dt.date, k: int) -> dt.date:
    y, m = divmod(d.month - 1 + k, 12)
    y += d.year
    return dt.date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


@dataclass(frozen=True)
class _Timeline:
    """Days are counted from `start` (day 0); week w covers days 7w .. 7w+6, the last week may be partial."""

    start: dt.date
    n_days: int
    n_weeks: int
    month_days: np.ndarray  # day index of start + k months, k = 0..months (churn-rate months)
    billing_months: np.ndarray  # day index of the 1st of each calendar month overlapping the period

    @classmethod
    def of(cls, cfg: SimulationConfig) -> _Timeline:
        start = cfg.start_date
        end_excl = _add_months(start, cfg.months)
        n_days = (end_excl - start).days
        month_days = np.array([(_add_months(start, k) - start).days for k in range(cfg.months + 1)])
        firsts, first = [], dt.date(start.year, start.month, 1)
        while first < end_excl:
            firsts.append((first - start).days)
            first = _add_months(first, 1)
        return cls(start, n_days, -(-n_days // 7), month_days, np.array(firsts))

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.n_days - 1)

    @property
    def epoch_s(self) -> int:
        return (self.start - dt.date(1970, 1, 1)).days * _DAY_S


def _new_customer_share(cfg: SimulationConfig) -> float:
    """Share of customers acquired during the period so acquisitions replace churners (stable base)."""
    churn = sum(cfg.target_monthly_churn) / 2
    return churn * cfg.months / (1 + churn * cfg.months)


# ---------------------------------------------------------------------------------- static attributes


def _choice(rng: np.random.Generator, shares: tuple[float, ...], n: int) -> np.ndarray:
    cum = np.cumsum(shares) / sum(shares)
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(shares) - 1).astype(np.int8)


@dataclass
class _Statics:
    """Per-customer attributes fixed at signup (plus hidden traits), for one chunk."""

    signup_day: np.ndarray
    first_risk_week: np.ndarray
    plan: np.ndarray
    fee: np.ndarray
    contract: np.ndarray
    region: np.ndarray
    channel: np.ndarray
    loyalty: np.ndarray
    level: np.ndarray  # personal engagement level
    fail_prob: np.ndarray
    quality_enter: np.ndarray
    rise_day: np.ndarray  # _NEVER when no price rise
    rise_pct: np.ndarray
    pay_offset: np.ndarray  # (n, weeks) int8: day within the week of the monthly charge, -1 none

    @property
    def n(self) -> int:
        return len(self.signup_day)


def _draw_statics(rng: np.random.Generator, n: int, tl: _Timeline, new_share: float) -> _Statics:
    is_new = rng.random(n) < new_share
    new_day = rng.integers(0, tl.n_days, n)
    # Tenure of the base at the start: survivors of earlier years, up to ten years.
    tenure = np.minimum(1 + np.floor(rng.exponential(600.0, n)), 3650).astype(np.int64)
    signup_day = np.where(is_new, new_day, -tenure)
    # New customers are at risk from the first whole week after signup (no churn on the signup week).
    first_risk_week = np.where(is_new, signup_day // 7 + 1, 0)
    plan = _choice(rng, B.plan_share, n)
    contract = _choice(rng, B.contract_share, n)
    region = _choice(rng, B.region_share, n)
    channel = _choice(rng, B.channel_share, n)
    loyalty = rng.random(n) < np.where(contract > 0, 0.30, 0.15)
    # Fee at signup: list price of the plan, with noise; earlier signups pay a little less.
    fee = np.asarray(B.plan_fee)[plan] * rng.lognormal(0.0, 0.07, n) * np.exp(0.04 * signup_day / 365)
    fee = np.round(fee, 2)
    level = (
        np.asarray(B.channel_engagement)[channel]
        + np.asarray(B.plan_engagement)[plan]
        + 0.2 * loyalty
        + rng.normal(0.0, B.engagement_sd, n)
    )
    fail_prob = np.where(rng.random(n) < B.card_trouble_share, B.fail_prob_card_trouble, B.fail_prob)
    quality_enter = np.minimum(B.quality_enter * rng.lognormal(0.0, B.quality_proneness_sd, n), 0.2)
    has_rise = rng.random(n) < B.price_rise_share
    rise_month = rng.integers(1, max(len(tl.month_days) - 1, 2), n)
    rise_day = tl.month_days[np.minimum(rise_month, len(tl.month_days) - 1)]
    # A price rise is not applied in the first three months of a subscription.
    rise_day = np.where(has_rise & (rise_day >= signup_day + 90) & (rise_day < tl.n_days), rise_day, _NEVER)
    rise_pct = np.round(rng.uniform(*B.price_rise_pct, n), 3)
    # Monthly charge on the signup day of month, on the month's last day when it is shorter (a 31st
    # signup pays on 30 April): billing days cover the whole month, as they do at real companies, so
    # "days since last payment" does not depend on where in the month the as-of date falls.
    signup_dates = np.datetime64(tl.start, "D") + signup_day
    dom = (signup_dates - signup_dates.astype("datetime64[M]")).astype(np.int64) + 1
    pay_offset = np.full((n, tl.n_weeks), -1, dtype=np.int8)
    rows = np.arange(n)
    for first in tl.billing_months:  # a handful of months, vectorised over customers
        first_date = tl.start + dt.timedelta(days=int(first))
        month_len = calendar.monthrange(first_date.year, first_date.month)[1]
        day = first + np.minimum(dom, month_len) - 1
        ok = (day >= 0) & (day < tl.n_days) & (day >= signup_day)
        pay_offset[rows[ok], day[ok] // 7] = day[ok] % 7
    return _Statics(
        signup_day=signup_day.astype(np.int64),
        first_risk_week=first_risk_week.astype(np.int64),
        plan=plan,
        fee=fee,
        contract=contract,
        region=region,
        channel=channel,
        loyalty=loyalty,
        level=level,
        fail_prob=fail_prob,
        quality_enter=quality_enter,
        rise_day=rise_day.astype(np.int64),
        rise_pct=rise_pct,
        pay_offset=pay_offset,
    )


# ---------------------------------------------------------------------------------------- weekly loop


@dataclass
class _Rows:
    """Row fragments collected week by week (column name -> list of arrays)."""

    cols: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self.cols.setdefault(k, []).append(v)

    def concat(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.cols.items()}


@dataclass
class _Run:
    """Everything one pass of the weekly loop produced for a chunk."""

    churn_day: np.ndarray  # rows from this day on are not written
    churn_kind: np.ndarray
    written_churn_day: np.ndarray | None = None  # churn_date as written, when label noise changed it
    flipped: np.ndarray | None = None  # label noise: customers whose written churn_date is a coin flip
    counts: np.ndarray | None = None  # (types, n, weeks) uint8 event counts
    hazard: np.ndarray | None = None  # (n, weeks) float32, NaN when not at risk
    payments: _Rows = field(default_factory=_Rows)
    contacts: _Rows = field(default_factory=_Rows)
    surveys: _Rows = field(default_factory=_Rows)
    campaigns: _Rows = field(default_factory=_Rows)
    base_hazard: np.ndarray | None = None  # (n, weeks) hazard had nobody been contacted (campaigns only)
    base_involuntary: np.ndarray | None = None  # (n, weeks) its involuntary part (campaigns only)
    # Calibration only: the voluntary linear predictor without intercept, log(1 - involuntary hazard), and
    # whether the week is on the customer's hazard path (from the first whole week after signup).
    x: np.ndarray | None = None
    log_invol: np.ndarray | None = None
    on_path: np.ndarray | None = None


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _round_hazard(h: np.ndarray) -> np.ndarray:
    """float32 with 12 mantissa bits (relative error < 2.5e-4): the stored truth compresses well and the
    simulation uses exactly the stored value."""
    bits = h.astype(np.float32).view(np.uint32)
    return ((bits + np.uint32(0x400)) & np.uint32(0xFFFFF800)).view(np.float32)


def _uniform_seconds(rng: np.random.Generator, lo_day: np.ndarray, hi_day: np.ndarray) -> np.ndarray:
    """A random second within [lo_day, hi_day) (days since start)."""
    span = (hi_day - lo_day) * _DAY_S
    return lo_day * _DAY_S + np.floor(rng.random(len(lo_day)) * span).astype(np.int64)


def _contacted_hazard(h: np.ndarray, h_invol: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    """The weekly hazard of a contacted customer: the contact multiplies the voluntary part only (an offer
    does not fix a declined card: dunning churn is the same), recombined as in the weekly loop."""
    h_vol = 1 - (1 - h) / (1 - h_invol)
    return np.clip(1 - (1 - np.minimum(h_vol * multiplier, 0.99)) * (1 - h_invol), 1e-7, 0.99)


@dataclass(frozen=True)
class _CampaignPlan:
    """Retention campaigns of one chunk: the weeks they start in and their own random draws."""

    cfg: CampaignSimulationConfig
    weeks: frozenset[int]
    rng: np.random.Generator


def _campaign_weeks(cfg: SimulationConfig, tl: _Timeline) -> frozenset[int]:
    """Weeks a campaign contacts its targets on the first day of: every `every_weeks` from `first_month` on,
    while the whole effect window (`effect_weeks` full weeks) fits in the period."""
    c = cfg.campaigns
    if c.every_weeks == 0:
        return frozenset()
    first = max(1, -(-int(tl.month_days[c.first_month]) // 7))
    last = tl.n_days // 7 - c.effect_weeks  # the window ends within the last full week
    return frozenset(range(first, last + 1, c.every_weeks))


def _campaign(
    plan: _CampaignPlan,
    w: int,
    h: np.ndarray,
    eligible: np.ndarray,
    drivers: dict[str, np.ndarray],
    busy_until: np.ndarray,
    multiplier: np.ndarray,
    run: _Run,
) -> None:
    """Run week `w`'s campaign: target the riskiest eligible customers by a noisy view of their hazard (the
    company's own model), hold out a random control share, draw each target's type from what drives their risk,
    and set the treated customers' hazard multiplier for the effect window."""
    c, rng = plan.cfg, plan.rng
    pool = np.flatnonzero(eligible)
    k = int(round(len(pool) * c.target_pct / 100))
    if k == 0:
        return
    noisy = np.log(h[pool]) + rng.normal(0.0, 0.5, len(pool))
    targets = pool[np.argsort(-noisy, kind="stable")[:k]]
    rank = np.arange(k)
    tier = np.where(rank < 0.2 * k, 0, np.where(rank < 0.5 * k, 1, 2)).astype(np.int8)
    control = rng.random(k) < c.control_pct / 100
    price, complaints, fails, eng = (drivers[x][targets] for x in ("price", "complaints", "fails", "eng"))
    p_persuadable = _sigmoid(-1.2 + 1.6 * price + 1.1 * (complaints > 0.5) + 0.9 * (fails > 0.3))
    p_annoyed = np.minimum(
        _sigmoid(-3.0 + 1.5 * np.maximum(-eng, 0)) * (complaints <= 0.5), 1 - p_persuadable
    )
    u = rng.random(k)
    kind = np.where(u < p_persuadable, 1, np.where(u >= 1 - p_annoyed, 2, 0)).astype(np.int8)
    respond_p = np.array([0.25, 0.55, 0.05])[kind]
    responded = np.where(control, -1, (rng.random(k) < respond_p).astype(np.int8))
    offer = np.where(price, 0, np.where(complaints > 0.5, 1, np.where(fails > 0.3, 2, 3))).astype(np.int8)
    busy_until[targets] = w + c.effect_weeks
    effect = np.array([1.0, c.persuadable_multiplier, c.annoyed_multiplier])[kind]
    multiplier[targets] = np.where(control, 1.0, effect)
    ts = 7 * w * _DAY_S + rng.integers(8 * 3600, 18 * 3600, k)
    run.campaigns.add(
        ci=targets, ts=ts, week=np.full(k, w), control=control, tier=tier, kind=kind, responded=responded,
        offer=offer, effect=effect,
    )  # fmt: skip


def _simulate_weeks(
    st: _Statics,
    rng: np.random.Generator,
    tl: _Timeline,
    backlog: np.ndarray,
    intercept: float | None,
    plan: _CampaignPlan | None = None,
) -> _Run:
    """Run the weekly loop for one chunk (vectorised over its customers).

    Churn ends what is WRITTEN about a customer, never their simulated state: every customer's state
    evolves as if they stayed, and rows at or after the churn day are dropped. So the hazard path exists for
    every week from the first at-risk week to the end (the oracle needs the days after a churn inside its
    window), and a calibration pass (`intercept=None`, nobody churns, the hazard's drivers are recorded)
    sees exactly the paths of the real run.
    """
    n, weeks = st.n, tl.n_weeks
    calibrating = intercept is None
    run = _Run(churn_day=np.full(n, _NEVER, dtype=np.int64), churn_kind=np.full(n, -1, dtype=np.int8))
    if calibrating:
        run.x = np.zeros((n, weeks), dtype=np.float32)
        run.log_invol = np.zeros((n, weeks), dtype=np.float32)
        run.on_path = np.zeros((n, weeks), dtype=bool)
    else:
        run.counts = np.zeros((len(EVENT_TYPES), n, weeks), dtype=np.uint8)
        run.hazard = np.full((n, weeks), np.nan, dtype=np.float32)
    if plan is not None and not calibrating:
        run.base_hazard = np.full((n, weeks), np.nan, dtype=np.float32)
        run.base_involuntary = np.zeros((n, weeks), dtype=np.float32)
        busy_until = np.zeros(n, dtype=np.int64)  # a target is not targeted again within its effect window
        multiplier = np.ones(n)

    static_x = np.asarray(B.h_plan)[st.plan] + np.asarray(B.h_region)[st.region] + B.h_loyalty * st.loyalty
    contract_base = np.asarray(B.h_contract)[st.contract]
    contract_renewal = np.asarray(B.h_contract_renewal)[st.contract]
    term_days = np.asarray([1, 365, 730])[st.contract]
    has_term = st.contract > 0
    compl_chan = (0.35, 0.60)  # cumulative chat, email shares; complaints go to the phone more often
    plain_chan = (0.50, 0.85)
    median_response = np.array([3.0, 300.0, 8.0])  # minutes: chat, email, phone
    slow_after = np.array([20.0, 1440.0, 30.0])

    # Latent state: engagement deviation at its stationary spread; quality episodes at their steady share.
    level = st.level.copy()
    dev = rng.normal(0.0, B.innovation_sd / math.sqrt(1 - B.ar**2), n)
    bad = rng.random(n) < st.quality_enter / (st.quality_enter + B.quality_exit)
    # Observable state feeding the hazard (decaying counts of recent things).
    err_ema = np.zeros(n)
    fail_ema = np.zeros(n)
    open_complaints = np.zeros(n)
    slow_ema = np.zeros(n)
    csat_state = np.zeros(n)
    consecutive_fails = np.zeros(n, dtype=np.int64)
    retry_pending = np.zeros(n, dtype=bool)

    for w in range(weeks):
        day0 = 7 * w
        days_this_week = min(7, tl.n_days - day0)
        # --- latent dynamics
        level -= B.life_event_drop * (rng.random(n) < B.life_event_prob)
        shock = (rng.random(n) < B.shock_prob) * rng.uniform(0.6, 1.5, n)
        dev = B.ar * dev + B.innovation_sd * rng.standard_normal(n) - shock - 0.12 * bad
        q = rng.random(n)
        bad = np.where(bad, q >= B.quality_exit, q < st.quality_enter)
        eng = level + dev
        tenure = day0 - st.signup_day
        since_rise = day0 - st.rise_day
        risen = since_rise >= 0
        price_recent = risen & (since_rise < 56)

        # --- hazard of this week, from this week's latent state and last week's observable state
        renewal = has_term & (tenure >= 0) & (np.mod(tenure, term_days) >= term_days - 35)
        x = (
            static_x
            + np.where(renewal, contract_renewal, contract_base)
            + B.h_engagement * eng
            + B.h_errors * np.minimum(err_ema, 4)
            + np.where(
                risen, B.h_price_persistent + B.h_price_fresh * np.exp(-np.maximum(since_rise, 0) / 42), 0
            )
            + B.h_failed_payment * np.minimum(fail_ema, 2)
            + B.h_open_complaints * np.minimum(open_complaints, 2)
            + B.h_slow_responses * np.minimum(slow_ema, 2)
            + B.h_csat * csat_state
            + B.h_new_customer * np.exp(-np.maximum(tenure, 0) / 120)
        )
        h_invol = np.where(consecutive_fails >= 2, B.dunning_hazard, 0.0)
        on_path = w >= st.first_risk_week
        if calibrating:
            run.x[:, w] = x
            run.log_invol[:, w] = np.log1p(-h_invol)
            run.on_path[:, w] = on_path
        else:
            h_vol = -np.expm1(-np.exp(np.minimum(intercept + x, 5.0)))
            h = _round_hazard(np.clip(1 - (1 - h_vol) * (1 - h_invol), 1e-7, 0.99)).astype(np.float64)
            if run.base_hazard is not None:
                # Campaigns change only the churn draw: the customer's state (and so the base hazard) evolves
                # as if nobody had been contacted, which makes both potential outcomes computable.
                run.base_hazard[on_path, w] = h[on_path]
                run.base_involuntary[on_path, w] = h_invol[on_path]
                if w in plan.weeks:
                    eligible = on_path & (run.churn_day == _NEVER) & (busy_until <= w)
                    drivers = {
                        "price": price_recent,
                        "complaints": open_complaints,
                        "fails": fail_ema,
                        "eng": eng,
                    }
                    _campaign(plan, w, h, eligible, drivers, busy_until, multiplier, run)
                treated = busy_until > w
                h = np.where(treated, _round_hazard(_contacted_hazard(h, h_invol, multiplier)), h)
            run.hazard[on_path, w] = h[on_path]
            u = rng.random(n)
            kind_u = rng.random(n)
            log_daily_survival = np.log1p(-h) / 7
            at_risk = on_path & (run.churn_day == _NEVER)
            churn_now = at_risk & (u < -np.expm1(days_this_week * log_daily_survival))
            # Day of churn within the week: the same hazard spread evenly over the days.
            offset = np.minimum(np.floor(np.log1p(-u) / log_daily_survival), days_this_week - 1).astype(
                np.int64
            )
            run.churn_day[churn_now] = day0 + offset[churn_now]
            involuntary = kind_u * (h_vol + h_invol) < h_invol
            run.churn_kind[churn_now] = involuntary[churn_now]
        cut_s = run.churn_day * _DAY_S  # rows from this second on are not written

        # --- days this week the customer is (or, after a churn, would be) a customer: [lo, hi)
        lo = np.maximum(day0, st.signup_day)
        hi = np.full(n, min(day0 + 7, tl.n_days))
        frac = np.clip(hi - lo, 0, 7) / 7.0

        # --- activity events follow engagement; errors follow product quality
        act = np.exp(B.activity_slope * eng)
        rates = (
            B.login_rate * act,
            B.feature_rate * act,
            B.purchase_rate * np.exp(0.6 * eng) * (1 + 0.3 * st.plan),
            B.error_rate * np.sqrt(act) + B.error_rate_bad_quality * bad,
        )
        counts = [rng.poisson(rate * frac) for rate in rates]
        if run.counts is not None:
            for t, c in enumerate(counts):
                run.counts[t, :, w] = np.minimum(c, 255)
        errors = counts[EVENT_TYPES.index("error")]

        # --- payments: the monthly charge, and the retry of last week's failed charge
        retry_day = day0 + rng.integers(0, 7, n)
        retry = retry_pending & (retry_day >= lo) & (retry_day < hi)
        retry_failed = retry & (rng.random(n) < B.retry_fail_prob)
        consecutive_fails = np.where(
            retry, np.where(retry_failed, consecutive_fails + 1, 0), consecutive_fails
        )
        off = st.pay_offset[:, w].astype(np.int64)
        due_day = day0 + off
        due = (off >= 0) & (due_day >= lo) & (due_day < hi)
        due_failed = due & (rng.random(n) < st.fail_prob * np.where(consecutive_fails > 0, 3.0, 1.0))
        consecutive_fails = np.where(due, np.where(due_failed, consecutive_fails + 1, 0), consecutive_fails)
        retry_pending = due_failed
        failed_now = due_failed.astype(np.float64) + retry_failed
        for mask, day, failed in ((due, due_day, due_failed), (retry, retry_day, retry_failed)):
            ts = day * _DAY_S + rng.integers(0, _DAY_S, n)
            idx = np.flatnonzero(mask & (ts < cut_s))
            if not calibrating:
                d = day[idx]
                amount = st.fee[idx] * np.where(d >= st.rise_day[idx], 1 + st.rise_pct[idx], 1.0)
                run.payments.add(ci=idx, ts=ts[idx], amount=np.round(amount, 2), failed=failed[idx])

        # --- support contacts: the drivers of churn drive contacts and complaints too
        low = np.maximum(-eng, 0)
        err_now = errors > 0
        failed_recent = np.minimum(fail_ema + failed_now, 2)
        lam = B.contact_rate * np.exp(
            B.contact_errors * err_now
            + 0.3 * np.minimum(err_ema, 4)
            + B.contact_low_engagement * low
            + 1.0 * price_recent
            + 1.2 * failed_recent
            + 0.4 * np.minimum(open_complaints, 2)
        )
        n_contacts = rng.poisson(lam * frac)
        who = np.flatnonzero(n_contacts)
        ci = np.repeat(who, n_contacts[who])
        m = len(ci)
        ts = _uniform_seconds(rng, lo[ci], hi[ci])
        p_complaint = _sigmoid(
            -1.7
            + 1.2 * err_now
            + 1.0 * price_recent
            + 1.0 * failed_recent
            + 0.7 * low
            + 0.5 * (open_complaints > 0.5)
        )
        complaint = rng.random(m) < p_complaint[ci]
        u_chan = rng.random(m)
        cuts = np.where(complaint[:, None], compl_chan, plain_chan)
        chan = ((u_chan >= cuts[:, 0]).astype(np.int8) + (u_chan >= cuts[:, 1])).astype(np.int8)
        response = np.round(median_response[chan] * backlog[w] * rng.lognormal(0.0, 0.9, m), 1) + 0.1
        slow = response > slow_after[chan]
        resolves = rng.random(m) < _sigmoid(2.2 - 1.4 * complaint - 0.9 * slow)
        resolution = rng.lognormal(np.log(np.where(complaint, 1440.0, 240.0)), 1.0, m)
        resolved_ts = ts + np.round((response + resolution) * 60).astype(np.int64)
        resolved = resolves & (resolved_ts < tl.n_days * _DAY_S)  # resolved after the data ends: still open
        answered = resolved & (rng.random(m) < 0.45)
        csat = np.clip(
            np.rint(4.3 - 1.1 * slow - 0.9 * complaint - 0.5 * (resolution > 2880) + rng.normal(0.0, 0.9, m)),
            1,
            5,
        )
        csat = np.where(answered, csat, 0).astype(np.int8)
        if not calibrating:
            keep = ts < cut_s[ci]
            run.contacts.add(
                ci=ci[keep],
                ts=ts[keep],
                channel=chan[keep],
                complaint=complaint[keep],
                response=response[keep],
                resolved_ts=np.where(resolved, resolved_ts, -1)[keep],
                csat=csat[keep],
            )

        # --- surveys, now and then
        surveyed = np.flatnonzero(rng.random(n) < B.survey_rate * frac)
        s_ts = _uniform_seconds(rng, lo[surveyed], hi[surveyed])
        nps = np.clip(
            np.rint(
                6.8
                + 1.6 * eng[surveyed]
                - 1.5 * price_recent[surveyed]
                - 0.4 * np.minimum(err_ema[surveyed], 3)
                - 0.8 * np.minimum(open_complaints[surveyed], 2)
                + rng.normal(0.0, 1.5, len(surveyed))
            ),
            0,
            10,
        ).astype(np.int8)
        if not calibrating:
            keep = s_ts < cut_s[surveyed]
            run.surveys.add(ci=surveyed[keep], ts=s_ts[keep], nps=nps[keep])

        # --- observable state for next week's hazard
        unresolved_complaints = complaint & ~(resolves & (resolution < 7 * 1440))
        open_complaints = 0.85 * open_complaints + np.bincount(ci, unresolved_complaints, minlength=n)
        slow_ema = 0.7 * slow_ema + np.bincount(ci, slow, minlength=n)
        n_answered = np.bincount(ci, answered, minlength=n)
        csat_sum = np.bincount(ci, np.where(answered, csat.astype(np.float64) - 3, 0.0), minlength=n)
        csat_state = np.where(n_answered > 0, csat_sum / np.maximum(n_answered, 1), 0.92 * csat_state)
        err_ema = 0.6 * err_ema + errors
        fail_ema = 0.5 * fail_ema + failed_now
    if run.counts is not None:
        # Nothing is written after a churn: no events in the weeks after the churn week.
        after_churn = np.arange(weeks)[None, :] > (run.churn_day // 7)[:, None]
        run.counts[:, after_churn] = 0
    return run


# ---------------------------------------------------------------------------------------- calibration


def _support_backlog(rng: np.random.Generator, weeks: int) -> np.ndarray:
    """Company-wide support slowness per week (staffing troubles), the same for every customer."""
    innovation = rng.normal(0.0, 0.2, weeks)
    spike = (rng.random(weeks) < 0.04) * rng.uniform(0.7, 1.4, weeks)
    level, out = 0.0, np.empty(weeks)
    for w in range(weeks):  # a short recursion over weeks, not over customers
        level = 0.8 * level + innovation[w] + spike[w]
        out[w] = level
    return np.exp(out)


def _month_counts(
    signup_day: np.ndarray, churn_day: np.ndarray, tl: _Timeline
) -> tuple[np.ndarray, np.ndarray]:
    """Customers active at the start of each month, and how many of them churned within it."""
    months = len(tl.month_days) - 1
    active, churned = np.zeros(months, dtype=np.int64), np.zeros(months, dtype=np.int64)
    for k in range(months):
        start, nxt = tl.month_days[k], tl.month_days[k + 1]
        was_active = (signup_day < start) & (churn_day >= start)
        active[k] = was_active.sum()
        churned[k] = (was_active & (churn_day < nxt)).sum()
    return active, churned


class _ExpectedChurn:
    """Expected mean monthly churn rate of a calibration pass, as a function of the intercept.

    Log-survival to each month boundary is linear in the weekly log-survivals, so it is one matrix product
    with the share of each week that lies before the boundary.
    """

    def __init__(self, run: _Run, st: _Statics, tl: _Timeline):
        assert run.x is not None and run.log_invol is not None and run.on_path is not None
        self.exp_x = np.where(run.on_path, np.exp(run.x.astype(np.float64)), 0.0)
        self.log_invol = np.where(run.on_path, run.log_invol, 0.0)
        days_in_week = np.minimum(7, tl.n_days - 7 * np.arange(tl.n_weeks))
        before = np.clip(
            tl.month_days[None, :] - 7 * np.arange(tl.n_weeks)[:, None], 0, days_in_week[:, None]
        )
        # The hazard holds for a whole week; a partial last week gets its share of days.
        self.share = before / 7.0
        self.signed = st.signup_day[:, None] < tl.month_days[None, :-1]

    def __call__(self, intercept: float) -> float:
        week_log_surv = -np.minimum(math.exp(intercept) * self.exp_x, math.exp(5.0)) + self.log_invol
        surv = np.exp(week_log_surv @ self.share)  # (customers, month boundaries)
        s0, s1 = surv[:, :-1] * self.signed, surv[:, 1:] * self.signed
        return float(np.mean((s0 - s1).sum(axis=0) / np.maximum(s0.sum(axis=0), 1e-12)))


def _calibrate_intercept(
    cfg: SimulationConfig, tl: _Timeline, new_share: float, backlog: np.ndarray, seed: np.random.SeedSequence
) -> float:
    """The voluntary-hazard intercept whose expected monthly churn hits the middle of the target band.

    Solved by bisection on a pre-simulated sample (deterministic: its own seed, no churn draws needed).
    """
    rng = np.random.default_rng(seed)
    st = _draw_statics(rng, _CALIBRATION_CUSTOMERS, tl, new_share)
    run = _simulate_weeks(st, rng, tl, backlog, intercept=None)
    expected = _ExpectedChurn(run, st, tl)
    lo_band, hi_band = cfg.target_monthly_churn
    target = (lo_band + hi_band) / 2
    lo, hi = -20.0, 3.0
    if not expected(lo) < target < expected(hi):
        raise ConfigError(
            f"simulation.target_monthly_churn {list(cfg.target_monthly_churn)} cannot be reached: involuntary "
            f"churn alone gives {expected(lo):.4f} per month; choose a band around 0.01-0.1"
        )
    for _ in range(50):
        mid = (lo + hi) / 2
        if expected(mid) < target:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 6)


# ------------------------------------------------------------------------------------------- tables


def _dict_array(codes: np.ndarray, labels: tuple[str, ...], mask: np.ndarray | None = None) -> pa.Array:
    indices = pa.array(codes.astype(np.int8), type=pa.int8(), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(labels, type=pa.string()))


def _dates(tl: _Timeline, day: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    days = (day + (tl.start - dt.date(1970, 1, 1)).days).astype(np.int32)
    return pa.array(days, type=pa.int32(), mask=mask).view(pa.date32())


def _timestamps(tl: _Timeline, seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array((tl.epoch_s + seconds) * 1_000_000, type=pa.int64(), mask=mask).view(pa.timestamp("us"))


def _written_churn_day(run: _Run) -> np.ndarray:
    return run.churn_day if run.written_churn_day is None else run.written_churn_day


def _customers_table(
    ids: np.ndarray,
    st: _Statics,
    run: _Run,
    tl: _Timeline,
    cfg: SimulationConfig,
    noise_rng: np.random.Generator | None = None,
) -> pa.Table:
    churn_day = _written_churn_day(run)
    # A non-contractual business never learns of a dropout: nothing is written.
    stayed = (churn_day == _NEVER) | (cfg.contract == "non_contractual")
    noise = cfg.noise
    if noise_rng is not None and noise.attribute_noise_pct > 0:
        st = _noisy_attributes(st, noise_rng, noise.attribute_noise_pct / 100)
    columns = {
        "customer_id": pa.array(ids, type=pa.int64()),
        "signup_date": _dates(tl, st.signup_day),
        "churn_date": _dates(tl, np.where(stayed, 0, churn_day), mask=stayed),
        "plan": _dict_array(st.plan, PLANS),
        "monthly_fee": pa.array(st.fee, type=pa.float64()),
        "contract" if cfg.contract == "subscription" else "membership": _dict_array(st.contract, CONTRACTS),
        "region": _dict_array(st.region, REGIONS),
        "acquisition_channel": _dict_array(st.channel, CHANNELS),
        "loyalty_member": pa.array(st.loyalty, type=pa.bool_()),
    }
    if noise_rng is not None:
        columns.update(_irrelevant_columns(noise_rng, len(ids), noise.irrelevant_attributes))
    return pa.table(columns)


# ---------------------------------------------------------------------------------------------- noise

_NOISE_LEVELS = ("a", "b", "c", "d")


def _noisy_attributes(st: _Statics, rng: np.random.Generator, share: float) -> _Statics:
    """A copy whose written attributes are, for `share` of the rows of each, another random customer's."""
    n = st.n
    out = {}
    for name in ("plan", "fee", "contract", "region", "channel", "loyalty"):
        values = getattr(st, name).copy()
        hit = np.flatnonzero(rng.random(n) < share)
        values[hit] = getattr(st, name)[rng.integers(0, n, len(hit))]
        out[name] = values
    return replace(st, **out)


def _irrelevant_columns(rng: np.random.Generator, n: int, k: int) -> dict[str, pa.Array]:
    """`noise_1..k`: odd ones standard-normal numbers, even ones one of four letters; no signal at all."""
    cols = {}
    for j in range(1, k + 1):
        if j % 2:
            cols[f"noise_{j}"] = pa.array(np.round(rng.standard_normal(n), 3), type=pa.float64())
        else:
            cols[f"noise_{j}"] = _dict_array(rng.integers(0, len(_NOISE_LEVELS), n), _NOISE_LEVELS)
    return cols


def _flip_labels(run: _Run, st: _Statics, tl: _Timeline, rng: np.random.Generator, share: float) -> None:
    """Label noise: for `share` of the customers the written churn_date ignores behaviour.

    A churner among them is written without a churn_date (their rows still stop: they went silent); a
    non-churner gets a churn day uniform over their at-risk days in the period, and their rows stop there.
    """
    n = st.n
    flipped = rng.random(n) < share
    first = np.maximum(7 * st.first_risk_week, 0)
    u = rng.random(n)
    can_churn = first < tl.n_days
    churner = run.churn_day != _NEVER
    new_day = first + np.floor(u * np.maximum(tl.n_days - first, 1)).astype(np.int64)
    to_churn = flipped & ~churner & can_churn
    to_stay = flipped & churner
    written = run.churn_day.copy()
    written[to_stay] = _NEVER
    written[to_churn] = new_day[to_churn]
    run.churn_day = np.where(to_churn, new_day, run.churn_day)
    run.written_churn_day = written
    run.flipped = to_churn | to_stay
    cut_s = run.churn_day * _DAY_S
    for rows in (run.payments, run.contacts, run.surveys):
        if not rows.cols:
            continue
        cols = rows.concat()
        keep = cols["ts"] < cut_s[cols["ci"]]
        rows.cols = {k: [v[keep]] for k, v in cols.items()}


def _events_table(
    ids: np.ndarray, st: _Statics, run: _Run, tl: _Timeline, rng: np.random.Generator
) -> pa.Table:
    """Expand the weekly counts to events at random seconds of the customer's days that week, sorted by
    customer and time (one integer sort: cell, second within the week and type packed in one key)."""
    assert run.counts is not None
    weeks = tl.n_weeks
    keys = []
    for t in range(len(EVENT_TYPES)):
        flat = run.counts[t].reshape(-1)
        cells = np.flatnonzero(flat)
        cells = np.repeat(cells, flat[cells])
        ci, w = np.divmod(cells, weeks)
        lo = np.maximum(7 * w, st.signup_day[ci])
        hi = np.minimum(7 * w + 7, tl.n_days)
        second = (lo - 7 * w) * _DAY_S + np.floor(rng.random(len(cells)) * (hi - lo) * _DAY_S).astype(
            np.int64
        )
        # In the churn week, events at or after the churn day are not written.
        keep = 7 * w * _DAY_S + second < run.churn_day[ci] * _DAY_S
        keys.append((cells[keep] << 22) | (second[keep] << 2) | t)
        del flat, cells, ci, w, lo, hi, second, keep
    key = np.sort(np.concatenate(keys))
    del keys
    etype = (key & 3).astype(np.int8)
    ci, w = np.divmod(key >> 22, weeks)
    ts = 7 * w * _DAY_S + ((key >> 2) & ((1 << 20) - 1))
    del key, w
    purchase = etype == EVENT_TYPES.index("purchase")
    amount = np.zeros(len(ci))
    spend = np.log(np.array([12.0, 18.0, 30.0]))[st.plan[ci[purchase]]]
    amount[purchase] = np.round(np.exp(spend + rng.normal(0.0, 0.6, int(purchase.sum()))), 2)
    return pa.table(
        {
            "customer_id": pa.array(ids[ci], type=pa.int64()),
            "ts": _timestamps(tl, ts),
            "event_type": _dict_array(etype, EVENT_TYPES),
            "amount": pa.array(amount, type=pa.float64(), mask=~purchase),
        }
    )


def _sorted_rows(rows: _Rows) -> dict[str, np.ndarray]:
    cols = rows.concat() if rows.cols else {}
    if not cols:
        return {}
    order = np.lexsort((cols["ts"], cols["ci"]))
    return {k: v[order] for k, v in cols.items()}


def _contacts_table(ids: np.ndarray, run: _Run, tl: _Timeline) -> pa.Table | None:
    c = _sorted_rows(run.contacts)
    if not c:
        return None
    open_ = c["resolved_ts"] < 0
    return pa.table(
        {
            "customer_id": pa.array(ids[c["ci"]], type=pa.int64()),
            "ts": _timestamps(tl, c["ts"]),
            "channel": _dict_array(c["channel"], SUPPORT_CHANNELS),
            "is_complaint": pa.array(c["complaint"], type=pa.bool_()),
            "response_minutes": pa.array(c["response"], type=pa.float64()),
            "resolved_ts": _timestamps(tl, np.where(open_, 0, c["resolved_ts"]), mask=open_),
            "csat": pa.array(c["csat"], type=pa.int8(), mask=c["csat"] == 0),
        }
    )


def _surveys_table(ids: np.ndarray, run: _Run, tl: _Timeline) -> pa.Table | None:
    s = _sorted_rows(run.surveys)
    if not s:
        return None
    return pa.table(
        {
            "customer_id": pa.array(ids[s["ci"]], type=pa.int64()),
            "ts": _timestamps(tl, s["ts"]),
            "nps": pa.array(s["nps"], type=pa.int8()),
        }
    )


def _payments_table(ids: np.ndarray, run: _Run, tl: _Timeline) -> pa.Table | None:
    p = _sorted_rows(run.payments)
    if not p:
        return None
    return pa.table(
        {
            "customer_id": pa.array(ids[p["ci"]], type=pa.int64()),
            "ts": _timestamps(tl, p["ts"]),
            "amount": pa.array(p["amount"], type=pa.float64()),
            "status": _dict_array(p["failed"].astype(np.int8), PAYMENT_STATUS),
        }
    )


def _campaigns_tables(
    ids: np.ndarray, run: _Run, tl: _Timeline, cfg: CampaignSimulationConfig
) -> tuple[pa.Table | None, pa.Table | None]:
    """The campaigns table as the CRM records it, and its truth: each target's type and churn probability over
    the effect window with and without the contact (from the base hazard path, so both are exact)."""
    c = _sorted_rows(run.campaigns)
    if not c:
        return None, None
    assert run.base_hazard is not None and run.base_involuntary is not None
    weeks = c["week"][:, None] + np.arange(cfg.effect_weeks)[None, :]
    base = run.base_hazard[c["ci"][:, None], weeks].astype(np.float64)
    invol = run.base_involuntary[c["ci"][:, None], weeks].astype(np.float64)
    contacted = _round_hazard(_contacted_hazard(base, invol, c["effect"][:, None])).astype(np.float64)
    p_not = 1 - np.prod(1 - base, axis=1)
    p_yes = 1 - np.prod(1 - contacted, axis=1)
    day = 7 * c["week"]
    campaign_id = pa.array([f"retention-{tl.start + dt.timedelta(days=int(d))}" for d in np.unique(day)])
    campaign = pa.DictionaryArray.from_arrays(
        pa.array(np.searchsorted(np.unique(day), day).astype(np.int32)), campaign_id
    )
    customer_id = pa.array(ids[c["ci"]], type=pa.int64())
    group = _dict_array(c["control"].astype(np.int8), CAMPAIGN_GROUPS)
    data = pa.table(
        {
            "customer_id": customer_id,
            "ts": _timestamps(tl, c["ts"]),
            "campaign_id": campaign,
            "group": group,
            "offer": _dict_array(c["offer"], OFFERS),
            "responded": pa.array(c["responded"] == 1, type=pa.bool_(), mask=c["responded"] < 0),
            "risk_tier": _dict_array(c["tier"], CAMPAIGN_TIERS),
        }
    )
    truth = pa.table(
        {
            "customer_id": customer_id,
            "campaign_id": campaign,
            "contact_date": _dates(tl, day),
            "group": group,
            "customer_type": _dict_array(c["kind"], CUSTOMER_TYPES),
            "p_churn_not_contacted": pa.array(p_not, type=pa.float64()),
            "p_churn_contacted": pa.array(p_yes, type=pa.float64()),
        }
    )
    return data, truth


def _hazard_table(ids: np.ndarray, run: _Run, tl: _Timeline) -> pa.Table:
    assert run.hazard is not None
    flat = run.hazard.reshape(-1)
    cells = np.flatnonzero(~np.isnan(flat))
    ci, w = np.divmod(cells, tl.n_weeks)
    return pa.table(
        {
            "customer_id": pa.array(ids[ci], type=pa.int64()),
            "week_start": _dates(tl, 7 * w),
            "hazard": pa.array(flat[cells], type=pa.float32()),
        }
    )


def _truth_customers_table(ids: np.ndarray, st: _Statics, run: _Run, tl: _Timeline) -> pa.Table:
    no_rise = st.rise_day == _NEVER
    churn_day = _written_churn_day(run)
    stayed = churn_day == _NEVER
    kind = np.where(stayed, -1, run.churn_kind)
    columns = {
        "customer_id": pa.array(ids, type=pa.int64()),
        "churn_date": _dates(tl, np.where(stayed, 0, churn_day), mask=stayed),
        "churn_kind": _dict_array(np.maximum(kind, 0), CHURN_KINDS, mask=kind < 0),
        "price_rise_date": _dates(tl, np.where(no_rise, 0, st.rise_day), mask=no_rise),
        "price_rise_pct": pa.array(st.rise_pct, type=pa.float64(), mask=no_rise),
        "card_trouble": pa.array(st.fail_prob > B.fail_prob, type=pa.bool_()),
    }
    if run.flipped is not None:
        columns["label_flipped"] = pa.array(run.flipped, type=pa.bool_())
    return pa.table(columns)


# ------------------------------------------------------------------------------------------- writing

# Fixed writer options: same data, same bytes. No Arrow schema blob, so strings read back as plain strings.
# Snappy (the Parquet default of Spark and pyarrow) rather than ZSTD: files are ~25% larger, but every
# feature build decodes the whole event history (recency needs it) and the 1M-customer build measured
# ~12% faster on Snappy files; pandas' reading time did not change.
_PARQUET_OPTIONS = {
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": True,
    "store_schema": False,
    "version": "2.6",
    "data_page_version": "1.0",
}
_ROW_GROUP = 1_000_000


class _Writers:
    """One ParquetWriter per table, opened on the first non-empty chunk."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}

    def write(self, name: str, table: pa.Table | None) -> None:
        if table is None or table.num_rows == 0:
            return
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(
                self.folder / f"{name}.parquet", table.schema, **_PARQUET_OPTIONS
            )
            self.rows[name] = 0
        self.writers[name].write_table(table, row_group_size=_ROW_GROUP)
        self.rows[name] += table.num_rows

    def close(self) -> dict[str, int]:
        for w in self.writers.values():
            w.close()
        return {name: (self.folder / f"{name}.parquet").stat().st_size for name in self.writers}


def _check_replaceable(folder: Path, allowed: set[str], what: str) -> None:
    """Only a folder a simulation wrote may be replaced: never wipe someone's unrelated directory."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"{what} {folder} exists and is not a folder; choose a folder path for it")
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    if foreign:
        raise ConfigError(
            f"refusing to replace {what} {folder}: it holds {', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}, which a simulation did not write; choose another folder "
            f"or empty it"
        )


_TRUTH_README = """\
Ground truth of a simulated company (simulator.company). The pipeline never reads this folder as input.

hazard.parquet   customer_id (int64), week_start (date), hazard (float32, 12 significant bits)
                 One row per customer and week from their first whole week after signup (week 0 for
                 customers who signed up before the period) to the last week of the period (it may be
                 partial). `hazard` is the weekly churn hazard P(churn during that week | a customer at its
                 start), computed from the customer's state that week; a daily hazard
                 1 - (1 - hazard)^(1/7) applies to each day of the week. The simulated state ignores churn
                 (churn only stops rows being written), so after a churn the path goes on as the hazard the
                 customer would have had, had they stayed: the oracle needs it for the days of its window
                 after the churn. Rows are sorted by customer and week.
customers.parquet customer_id, churn_date, churn_kind (voluntary / involuntary, null if still a customer),
                 price_rise_date / price_rise_pct (null if no price rise), card_trouble (payment-prone).
truth.json       the period, seed, calibrated base log-hazard and behaviour parameters.

simulator.oracle.true_churn_probability(truth_dir, customer_ids, as_of, horizon_days) turns the hazard
path into P(churn in (as_of, as_of + horizon]). It knows the customer's realised future state (the path),
not the coin flip: an upper bound on what any model can achieve from data.
"""


def _truth_readme_extra(cfg: SimulationConfig) -> str:
    """Notes on the non-default settings (empty by default, so default output keeps its bytes)."""
    notes = []
    if cfg.contract == "non_contractual":
        notes.append(
            "non_contractual company: customers.parquet's churn_date here is the latent dropout day, which the\n"
            "data never shows (its churn_date is always null; events simply stop). The oracle's probability is\n"
            "P(dropout within the horizon), not P(no event within the horizon).\n"
        )
    if cfg.noise != NoiseConfig():
        notes.append(
            f"noise {cfg.noise.model_dump()}: churn_date here is the written one; label_flipped (when label\n"
            "noise is on) marks customers whose written churn_date is a coin flip. The hazard path ignores flips.\n"
        )
    if cfg.campaigns.every_weeks:
        notes.append(
            f"campaigns {cfg.campaigns.model_dump()}: campaigns.parquet holds every target of every campaign\n"
            "(customer_id, campaign_id, contact_date, group, customer_type: unaffected / persuadable / annoyed)\n"
            "and its churn probability over the effect window (contact_date + effect_weeks weeks) had it been\n"
            "contacted and had it not (p_churn_contacted, p_churn_not_contacted): the true effect of a contact is\n"
            "their difference. The hazard path is the realised one (treated customers' multiplier applied).\n"
        )
    return "".join("\n" + n for n in notes)


class _NoProgress:
    def __enter__(self) -> Callable[[str], None]:
        return lambda description: None

    def __exit__(self, *exc: object) -> None:
        return None


class _RichProgress:
    def __init__(self, total: int):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self.total = total

    def __enter__(self) -> Callable[[str], None]:
        self.progress.__enter__()
        task = self.progress.add_task("calibrating churn", total=self.total)

        def advance(description: str) -> None:
            self.progress.update(task, advance=1, description=description)

        return advance

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)


def simulate_company(
    cfg: SimulationConfig, out_dir: Path, truth_dir: Path, *, progress: bool = False
) -> SimulationSummary:
    """Simulate the company of `cfg`: the 5 contract tables into `out_dir`, the ground truth into `truth_dir`.

    Both folders appear whole at the end (replacing earlier simulations); same `cfg`, same bytes.
    """
    started = time.perf_counter()
    out_dir, truth_dir = Path(out_dir), Path(truth_dir)
    if out_dir.resolve() == truth_dir.resolve():
        raise ConfigError(
            f"the data folder and the truth folder are both {out_dir}; give the truth its own folder"
        )
    _check_replaceable(out_dir, {f"{t}.parquet" for t in TABLE_NAMES}, "data folder")
    _check_replaceable(truth_dir, set(TRUTH_FILES), "truth folder")
    tl = _Timeline.of(cfg)
    new_share = _new_customer_share(cfg)
    n_chunks = -(-cfg.customers // cfg.chunk_customers)
    seeds = np.random.SeedSequence(cfg.seed).spawn(n_chunks + 2)
    # Noise has its own seeds: the company under the noise is the one simulated without it.
    noisy = cfg.noise != NoiseConfig()
    noise_seeds = np.random.SeedSequence([cfg.seed, 0x6E6F697365]).spawn(n_chunks)
    # Campaigns too: they change only the churn draws of the customers they treat.
    campaign_weeks = _campaign_weeks(cfg, tl)
    campaign_seeds = np.random.SeedSequence([cfg.seed, 0x63616D70]).spawn(n_chunks)
    contractual = cfg.contract == "subscription"
    backlog = _support_backlog(np.random.default_rng(seeds[1]), tl.n_weeks)
    active = np.zeros(cfg.months, dtype=np.int64)
    churned = np.zeros(cfg.months, dtype=np.int64)

    with _RichProgress(n_chunks + 1) if progress else _NoProgress() as advance:
        intercept = _calibrate_intercept(cfg, tl, new_share, backlog, seeds[0])
        advance(f"simulating chunk 1/{n_chunks}")
        with atomic_directory(out_dir) as data_tmp, atomic_directory(truth_dir) as truth_tmp:
            data, truth = _Writers(data_tmp), _Writers(truth_tmp)
            for c in range(n_chunks):
                first = c * cfg.chunk_customers
                n = min(cfg.chunk_customers, cfg.customers - first)
                rng = np.random.default_rng(seeds[c + 2])
                ids = np.arange(first + 1, first + n + 1, dtype=np.int64)
                st = _draw_statics(rng, n, tl, new_share)
                plan = None
                if campaign_weeks:
                    plan = _CampaignPlan(
                        cfg.campaigns, campaign_weeks, np.random.default_rng(campaign_seeds[c])
                    )
                run = _simulate_weeks(st, rng, tl, backlog, intercept, plan)
                noise_rng = np.random.default_rng(noise_seeds[c]) if noisy else None
                if noise_rng is not None and cfg.noise.label_flip_pct > 0:
                    _flip_labels(run, st, tl, noise_rng, cfg.noise.label_flip_pct / 100)
                data.write("customers", _customers_table(ids, st, run, tl, cfg, noise_rng))
                data.write("events", _events_table(ids, st, run, tl, rng))
                run.counts = None
                data.write("support_contacts", _contacts_table(ids, run, tl))
                data.write("surveys", _surveys_table(ids, run, tl))
                if contractual:
                    data.write("payments", _payments_table(ids, run, tl))
                if plan is not None:
                    campaigns, campaigns_truth = _campaigns_tables(ids, run, tl, cfg.campaigns)
                    data.write("campaigns", campaigns)
                    truth.write(TRUTH_CAMPAIGNS.removesuffix(".parquet"), campaigns_truth)
                truth.write(TRUTH_HAZARD.removesuffix(".parquet"), _hazard_table(ids, run, tl))
                truth.write(
                    TRUTH_CUSTOMERS.removesuffix(".parquet"), _truth_customers_table(ids, st, run, tl)
                )
                a, k = _month_counts(st.signup_day, _written_churn_day(run), tl)
                active += a
                churned += k
                del run, st
                advance(f"simulating chunk {min(c + 2, n_chunks)}/{n_chunks}")
            sizes, truth_sizes = data.close(), truth.close()
            rate = float(np.mean(churned / np.maximum(active, 1)))
            meta = {
                "start_date": tl.start.isoformat(),
                "end_date": tl.end.isoformat(),
                "weeks": tl.n_weeks,
                "customers": cfg.customers,
                "seed": cfg.seed,
                "base_log_hazard": intercept,
                "target_monthly_churn": list(cfg.target_monthly_churn),
                "observed_monthly_churn": rate,
                "monthly_churn": [
                    {
                        "month_start": (tl.start + dt.timedelta(days=int(d))).isoformat(),
                        "active": int(a),
                        "churned": int(k),
                    }
                    for d, a, k in zip(tl.month_days[:-1], active, churned, strict=True)
                ],
                "behaviour": asdict(B),
            }
            if not contractual or noisy:
                meta["contract"] = cfg.contract
                meta["noise"] = cfg.noise.model_dump()
            if campaign_weeks:
                meta["campaigns"] = cfg.campaigns.model_dump()
            (truth_tmp / TRUTH_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            (truth_tmp / "README.txt").write_text(_TRUTH_README + _truth_readme_extra(cfg))
            truth_bytes = sum(truth_sizes.values()) + sum(
                (truth_tmp / f).stat().st_size for f in (TRUTH_META, "README.txt")
            )
        rows = dict(data.rows)
    return SimulationSummary(
        customers=cfg.customers,
        rows=rows,
        bytes=sizes,
        truth_bytes=truth_bytes,
        start_date=tl.start,
        end_date=tl.end,
        monthly_churn_rate=rate,
        target_monthly_churn=tuple(cfg.target_monthly_churn),
        base_log_hazard=intercept,
        seconds=round(time.perf_counter() - started, 3),
        out_dir=out_dir,
        truth_dir=truth_dir,
    )
