"""The two attributions of `models.explain`: LightGBM's TreeSHAP and the Saabas path attribution."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from churn_pipeline.models import explain
from tests.models.synthetic import fit_churn_model, make_training_set


@pytest.fixture(scope="module")
def fitted():
    model, split = fit_churn_model(make_training_set(n_customers=800, snapshots=4, seed=21))
    return model, split.test


def test_path_contributions_add_up_to_the_raw_score(fitted):
    """Bias + contributions = the booster's raw log-odds, with categorical and missing values in the rows."""
    model, test = fitted
    assert test["days_since_last_login"].isna().any() and "plan" in model.categories
    c = model.contributions(test, include_bias=True, method="path")
    assert list(c.columns) == [*model.feature_names, explain.BIAS_COLUMN] and c.index.equals(test.index)
    raw = model.booster.predict(model.matrix(test), raw_score=True)
    assert np.allclose(c.sum(axis=1).to_numpy(), raw, rtol=0, atol=1e-9)
    # the bias is the same for everyone (the roots), the contributions are not
    assert c[explain.BIAS_COLUMN].nunique() == 1
    assert c[model.feature_names].std().max() > 0


def test_path_equals_treeshap_on_single_split_trees():
    """With stumps every feature acts alone, so both attributions credit exactly the same change."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 4))
    x[rng.random(2000) < 0.1, 2] = np.nan
    y = (x[:, 0] + 0.5 * np.nan_to_num(x[:, 2]) + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 2, "verbose": -1, "num_threads": 1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=30)
    path = explain.contributions(booster, x[:300], method="path")
    shap = explain.contributions(booster, x[:300], method="treeshap")
    assert np.allclose(path.to_numpy(), shap.to_numpy(), rtol=0, atol=1e-9)
    assert path.abs().sum().iloc[0] > 0  # the informative feature was credited


def test_path_contribution_is_the_walk_down_a_hand_checked_tree():
    """One depth-2 tree: each split credits its feature with the change of expected value (the
    count-weighted mean of the leaves below), computed here by hand from the dumped tree."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4000, 2))
    y = ((x[:, 0] > 0.5) & (x[:, 1] > 0.5)).astype(int)
    params = {"objective": "binary", "num_leaves": 3, "max_depth": 2, "verbose": -1, "num_threads": 1,
              "min_data_in_leaf": 50}  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=1)
    root = booster.dump_model()["tree_info"][0]["tree_structure"]

    def expected(node):
        if "split_feature" not in node:
            return node["leaf_value"], node["leaf_count"]
        (vl, nl), (vr, nr) = expected(node["left_child"]), expected(node["right_child"])
        return (vl * nl + vr * nr) / (nl + nr), nl + nr

    for row in ([0.9, 0.9], [0.1, 0.9], [0.9, 0.1]):
        node, want = root, np.zeros(3)
        want[2] = expected(root)[0]
        while "split_feature" in node:
            f = node["split_feature"]
            child = node["right_child"] if row[f] > node["threshold"] else node["left_child"]
            want[f] += expected(child)[0] - expected(node)[0]
            node = child
        got = explain.contributions(booster, np.array([row]), include_bias=True, method="path").to_numpy()[0]
        assert got == pytest.approx(want, abs=1e-12)
        assert got.sum() == pytest.approx(booster.predict(np.array([row]), raw_score=True)[0], abs=1e-12)


def test_unknown_method_is_rejected(fitted):
    model, test = fitted
    with pytest.raises(ValueError, match="unknown attribution method 'lime'"):
        explain.contributions(model.booster, model.matrix(test.head(3)), method="lime")


def test_no_rows_give_an_empty_frame(fitted):
    model, test = fitted
    out = model.contributions(test.head(0), method="path")
    assert out.shape == (0, len(model.feature_names)) and isinstance(out, pd.DataFrame)
