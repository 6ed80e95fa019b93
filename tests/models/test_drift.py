"""Drift: the reference profile and the population stability index (PSI) per feature."""

import json

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.models.drift import (
    drift_bin_counts,
    population_stability,
    psi_from_bin_counts,
    reference_profile,
    trend_psi,
)
from tests.models.synthetic import CATEGORICAL, FEATURES, make_training_set


@pytest.fixture(scope="module")
def frames():
    a = make_training_set(n_customers=4000, snapshots=1, seed=1).frame
    b = make_training_set(n_customers=4000, snapshots=1, seed=2).frame  # same distribution, other sample
    return a, b


def test_reference_profile_is_json_serialisable(frames):
    ref = reference_profile(frames[0], FEATURES, CATEGORICAL)
    back = json.loads(json.dumps(ref, allow_nan=False))
    assert set(back["features"]) == set(FEATURES)
    num = back["features"]["logins_30d"]
    assert num["kind"] == "numeric" and len(num["fractions"]) == len(num["edges"]) + 1
    assert sum(num["fractions"]) + num["missing"] == pytest.approx(1.0)
    cat = back["features"]["region"]
    assert cat["kind"] == "categorical" and set(cat["categories"]) == {"north", "south", "east", "west"}
    assert cat["missing"] == pytest.approx(frames[0]["region"].isna().mean())
    assert back["features"]["days_since_last_login"]["missing"] > 0.05


def test_psi_is_zero_for_identical_and_small_for_a_fresh_sample(frames):
    a, b = frames
    ref = reference_profile(a, FEATURES, CATEGORICAL)
    same = population_stability(ref, a)
    assert list(same.index) == FEATURES
    assert (same == 0).all()
    fresh = population_stability(ref, b)
    assert (fresh < 0.02).all()


def test_psi_is_large_for_shifted_distributions(frames):
    a, b = frames
    ref = reference_profile(a, FEATURES, CATEGORICAL)
    shifted = b.assign(
        logins_30d=b["logins_30d"] + 8,
        plan=pd.Categorical(
            np.where(b["plan"] == "basic", "premium", b["plan"].astype(str)),
            categories=b["plan"].cat.categories,
        ),
        days_since_last_login=np.nan,
        region=b["region"].cat.add_categories(["mars"]).fillna("mars"),
    )
    psi = population_stability(ref, shifted)
    assert psi["logins_30d"] > 0.25
    assert psi["plan"] > 0.25
    assert psi["days_since_last_login"] > 0.25  # everything moved into the missing bin
    assert psi["region"] > 0.1  # 5% moved from missing to a never-seen category
    assert psi["tenure_days"] < 0.02 and psi["complaints_30d"] < 0.02


def test_psi_accepts_strings_for_categoricals_and_needs_every_feature(frames):
    a, _ = frames
    ref = reference_profile(a, FEATURES, CATEGORICAL)
    as_text = a.assign(plan=a["plan"].astype(str), region=a["region"].astype(object))
    assert (population_stability(ref, as_text) == 0).all()
    with pytest.raises(DataValidationError, match="logins_30d"):
        population_stability(ref, a.drop(columns=["logins_30d"]))


def test_bin_counts_of_parts_add_up_to_the_psi_of_the_whole(frames):
    """What an engine counting per partition relies on: the counts of disjoint parts sum to the whole's."""
    ref = reference_profile(frames[0], FEATURES, CATEGORICAL)
    shifted = frames[1].assign(
        logins_30d=frames[1]["logins_30d"] * 3, region=frames[1]["region"].astype(object)
    )
    shifted.loc[::7, "region"] = "atlantis"  # a category never seen in training
    whole = drift_bin_counts(ref, shifted)
    parts = [drift_bin_counts(ref, shifted.iloc[i::3]) for i in range(3)]
    for name in FEATURES:
        assert whole[name].sum() == len(shifted), name
        np.testing.assert_array_equal(sum(p[name] for p in parts), whole[name])
    k = len(ref["features"]["region"]["categories"])
    assert whole["region"][k] == len(shifted.iloc[::7])  # the `other` bin
    summed = {name: sum(p[name] for p in parts) for name in FEATURES}
    psi = psi_from_bin_counts(ref, summed, len(shifted))
    pd.testing.assert_series_equal(psi, population_stability(ref, shifted))
    assert psi["logins_30d"] > 0.25 and psi["region"] > 0.1


def test_trend_psi_is_large_for_a_feature_that_moves_between_snapshots_and_small_for_a_stable_one():
    rng = np.random.default_rng(0)
    first = pd.DataFrame({"tenure_days": rng.uniform(0, 84, 3000), "spend": rng.gamma(2, 10, 3000)})
    last = pd.DataFrame({"tenure_days": first["tenure_days"] + 300, "spend": rng.gamma(2, 10, 3000)})
    got = trend_psi(first, last, ["tenure_days", "spend"], [])
    assert got["tenure_days"] > 5  # every row left the first snapshot's range
    assert got["spend"] < 0.02
    assert trend_psi(first, first, ["tenure_days", "spend"], []) == {"tenure_days": 0.0, "spend": 0.0}
