"""BG/NBD: parameter recovery on data simulated from the model, closed forms against numerical integration,
the feature columns on a frame, and point-in-time correctness."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from churn_pipeline.data.io import source_from_frames
from churn_pipeline.features import btyd, frequency, recency
from churn_pipeline.features.base import left_join_features
from tests.features.synthetic import as_known_at, random_frames, with_boundary_rows


def simulate_bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, seed: int, t_range: tuple[float, float] = (30, 365)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) of `n` customers drawn from the BG/NBD process itself (continuous time, vectorised).

    Repeat visits arrive as a Poisson process of rate lambda ~ Gamma(r, alpha); after each visit the
    customer drops out with probability p ~ Beta(a, b), i.e. they make K ~ Geometric(p) visits at most.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(*t_range, n)
    max_visits = rng.geometric(p)
    cap = 400
    times = np.cumsum(rng.exponential(1.0, (n, cap)) / lam[:, None], axis=1)
    allowed = np.arange(1, cap + 1)[None, :] <= max_visits[:, None]
    seen = allowed & (times <= T[:, None])
    x = seen.sum(axis=1)
    assert (x < cap).all(), "raise cap: some simulated customers made more visits than simulated"
    t_x = np.where(x > 0, np.take_along_axis(times, np.maximum(x - 1, 0)[:, None], axis=1)[:, 0], 0.0)
    return x.astype(float), t_x, T


def test_fit_recovers_the_parameters_of_simulated_data() -> None:
    true = btyd.BGNBDParams(r=0.6, alpha=12.0, a=0.8, b=2.5)
    x, t_x, T = simulate_bgnbd(40_000, true.r, true.alpha, true.a, true.b, seed=11)
    fit = btyd.fit_bgnbd(x, t_x, T)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(getattr(true, name), rel=0.15), (name, fit)
    # the likelihood at the fit is at least that at the truth (it is the maximum)
    assert btyd.log_likelihood(fit, x, t_x, T).sum() >= btyd.log_likelihood(true, x, t_x, T).sum()


def test_fit_subsample_is_seeded() -> None:
    x, t_x, T = simulate_bgnbd(3_000, 0.6, 12.0, 0.8, 2.5, seed=3)
    once = btyd.fit_bgnbd(x, t_x, T, max_customers=1_000)
    again = btyd.fit_bgnbd(x, t_x, T, max_customers=1_000)
    other = btyd.fit_bgnbd(x, t_x, T, max_customers=1_000, seed=1)
    assert once == again and once != other


def test_fit_refuses_data_without_repeat_visits() -> None:
    zeros = np.zeros(100)
    with pytest.raises(ValueError, match="repeat visits"):
        btyd.fit_bgnbd(zeros, zeros, np.full(100, 50.0))


# ------------------------------------------------------------------ closed forms vs numerical integration


def _integrated(
    params: btyd.BGNBDParams, x: int, t_x: float, T: float, horizon: float
) -> tuple[float, float]:
    """(P(alive), E[visits in the horizon]) by integrating the individual-level model over its prior.

    Bayes on the individual-level model: alive at T with likelihood (1-p)^x lambda^x e^{-lambda T}, dead
    after the x-th visit with p (1-p)^(x-1) lambda^x e^{-lambda t_x}; an alive customer's expected visits in
    the next t days are (1 - e^{-lambda p t}) / p. The Gamma prior on lambda integrates in closed form
    (E[lambda^x e^{-lambda s}] = Gamma(r+x)/Gamma(r) alpha^r / (alpha+s)^(r+x)); p is integrated numerically
    against its Beta prior, which is where the 2F1 of the closed form comes from.
    """
    r, alpha = params.r, params.alpha
    beta = stats.beta(params.a, params.b)

    def lam_moment(s: float) -> float:  # E[lambda^x e^{-lambda s}] up to the factor Gamma(r+x)/Gamma(r)
        return (alpha / (alpha + s)) ** r / (alpha + s) ** x

    def alive(p: float) -> float:
        return beta.pdf(p) * (1 - p) ** x * lam_moment(T)

    def dead(p: float) -> float:
        return 0.0 if x == 0 else beta.pdf(p) * p * (1 - p) ** (x - 1) * lam_moment(t_x)

    def future(p: float) -> float:
        return beta.pdf(p) * (1 - p) ** x * (lam_moment(T) - lam_moment(T + p * horizon)) / p

    def integral(f) -> float:
        return integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-11, limit=500)[0]

    a_, d_ = integral(alive), integral(dead)
    return a_ / (a_ + d_), integral(future) / (a_ + d_)


PARAMS = [btyd.BGNBDParams(r=2.0, alpha=30.0, a=1.5, b=4.0), btyd.BGNBDParams(r=0.9, alpha=8.0, a=0.7, b=2.0)]
CASES = [(0, 0.0, 40.0), (1, 10.0, 40.0), (4, 35.0, 40.0), (4, 5.0, 120.0), (12, 100.0, 110.0)]


@pytest.mark.parametrize("params", PARAMS, ids=["a>1", "a<1"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_p_alive_and_expected_events_match_numerical_integration(params, case) -> None:
    x, t_x, T = case
    want_alive, want_expected = _integrated(params, x, t_x, T, horizon=30.0)
    got_alive = btyd.p_alive(params, np.array([x]), np.array([t_x]), np.array([T]))[0]
    got_expected = btyd.expected_events(params, 30.0, np.array([x]), np.array([t_x]), np.array([T]))[0]
    assert got_alive == pytest.approx(want_alive, rel=1e-5)
    assert got_expected == pytest.approx(want_expected, rel=1e-4)


def test_textbook_hypergeometric_form_agrees_with_the_transformed_one() -> None:
    """The classic expression (power times 2F1 at t/(alpha+T+t)) where it is well-conditioned."""
    from scipy.special import hyp2f1

    p = PARAMS[0]
    x, t_x, T, t = np.array([0.0, 3.0, 8.0]), np.array([0.0, 20.0, 60.0]), np.array([50.0, 50.0, 90.0]), 30.0
    classic = (
        (p.a + p.b + x - 1)
        / (p.a - 1)
        * (
            1
            - ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x)
            * hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, t / (p.alpha + T + t))
        )
        * btyd.p_alive(p, x, t_x, T)
    )
    np.testing.assert_allclose(btyd.expected_events(p, t, x, t_x, T), classic, rtol=1e-9)


def test_expected_events_stay_finite_for_heavy_visitors_and_a_equal_one() -> None:
    p = btyd.BGNBDParams(r=3.0, alpha=2.0, a=1.0, b=5.0)
    x, t_x, T = np.array([700.0, 0.0, 5.0]), np.array([729.0, 0.0, 10.0]), np.array([730.0, 1.0, 400.0])
    got = btyd.expected_events(p, 90.0, x, t_x, T)
    assert np.isfinite(got).all() and (got >= 0).all()
    assert got[0] > 50  # ~1 visit a day, alive: most of the 90 days
    near = btyd.BGNBDParams(r=3.0, alpha=2.0, a=1.0 + 1e-4, b=5.0)
    np.testing.assert_allclose(got, btyd.expected_events(near, 90.0, x, t_x, T), rtol=1e-3)


# ------------------------------------------------------------------ feature columns


def _feature_frame(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> pd.DataFrame:  # noqa: N803
    """The frequency/recency columns a customer with summary (x, t_x, T) in whole days has."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_gap = np.where(x > 0, t_x / x, np.nan)
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(x)),
            "visit_days": (x + 1).astype("int64"),
            "visit_gap_mean_days": mean_gap,
            "days_since_last_event": T - t_x,
        }
    )


def test_summaries_recover_x_t_x_and_T_exactly_from_the_feature_columns() -> None:
    x, t_x, T = (np.floor(v) for v in simulate_bgnbd(2_000, 0.6, 12.0, 0.8, 2.5, seed=4))  # noqa: N806
    has, x2, t_x2, T2 = btyd.summaries(_feature_frame(x, t_x, T))  # noqa: N806
    assert has.all()
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(t_x2, t_x)  # t_x / x * x rounds back to the whole day
    np.testing.assert_array_equal(T2, T)


def test_add_btyd_columns_reads_the_summary_from_the_feature_columns() -> None:
    x, t_x, T = (np.floor(v) for v in simulate_bgnbd(500, 0.6, 12.0, 0.8, 2.5, seed=4))  # noqa: N806
    frame = _feature_frame(x, t_x, T)
    frame.loc[0, ["visit_days", "visit_gap_mean_days", "days_since_last_event"]] = [0, np.nan, np.nan]
    out = btyd.add_btyd_columns(frame, horizon_days=30, max_fit_customers=10_000)
    assert list(out.columns) == [*frame.columns, "btyd_p_alive", "btyd_expected_events"]
    assert out.loc[0, ["btyd_p_alive", "btyd_expected_events"]].isna().all()  # no events: null
    rest = out.iloc[1:]
    params = btyd.fit_bgnbd(x[1:], t_x[1:], T[1:])
    want = btyd.p_alive(params, x[1:], t_x[1:], T[1:])
    np.testing.assert_allclose(rest["btyd_p_alive"], np.round(want, 2))  # 2 decimals: see the docstring
    np.testing.assert_allclose(
        rest["btyd_expected_events"], btyd.expected_events(params, 30.0, x[1:], t_x[1:], T[1:])
    )
    assert ((rest["btyd_p_alive"] >= 0) & (rest["btyd_p_alive"] <= 1)).all()
    assert (
        rest.loc[rest["visit_days"] == 1, "btyd_p_alive"] == 1
    ).all()  # no repeat visit: alive by assumption
    assert rest["btyd_p_alive"].nunique() > 5
    assert "btyd_p_alive" not in frame.columns  # the input is left alone


def test_add_btyd_columns_leaves_nulls_when_the_model_cannot_be_fitted() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "visit_days": [1, 1],
            "visit_gap_mean_days": [np.nan, np.nan],
            "days_since_last_event": [3.0, 9.0],
        }
    )
    out = btyd.add_btyd_columns(frame, horizon_days=30, max_fit_customers=10_000)
    assert out[["btyd_p_alive", "btyd_expected_events"]].isna().all().all()


@pytest.mark.parametrize("as_of", [dt.date(2024, 4, 15), dt.date(2024, 6, 30)], ids=str)
def test_btyd_features_ignore_everything_after_as_of(as_of: dt.date) -> None:
    frames = with_boundary_rows(random_frames(seed=5, n_customers=80), as_of)

    def features(frames_: dict) -> pd.DataFrame:
        events = source_from_frames(frames_).tables.events
        table = left_join_features(
            frequency.frequency_features(events, as_of), [recency.days_since_last_event(events, as_of)]
        )
        frame = table.execute().sort_values("customer_id").reset_index(drop=True)
        return btyd.add_btyd_columns(frame, horizon_days=30, max_fit_customers=10_000)

    with_future, without_future = features(frames), features(as_known_at(frames, as_of))
    assert with_future["btyd_p_alive"].notna().sum() > 10
    pd.testing.assert_frame_equal(with_future, without_future)
