"""Candidates behind one interface: selection, contributions, refit, tuning determinism."""

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.core.config import LightGBMConfig, ModelConfig, TuningConfig
from churn_pipeline.core.errors import ConfigError
from churn_pipeline.models import evaluate
from churn_pipeline.models.candidates import (
    CANDIDATES,
    Context,
    Schema,
    resolve,
    scaled_params,
    select,
    sigmoid,
)
from churn_pipeline.models.split import customer_folds, out_of_time_split
from churn_pipeline.models.training import lightgbm_array, train_candidates
from tests.models.synthetic import CATEGORICAL, FEATURES, make_training_set

NO_TUNING = TuningConfig(trials=0)


def _frame(n: int, seed: int, signal: str) -> pd.DataFrame:
    """One snapshot of `n` customers with numeric features x0..x5 and labels from a linear or an interaction
    (checkerboard) log-odds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    if signal == "linear":
        logit = -1.0 + 1.2 * x[:, 0] - 0.9 * x[:, 1] + 0.6 * x[:, 2] + 0.4 * x[:, 3]
    else:
        logit = -0.5 + 3.0 * np.sign(x[:, 0] * x[:, 1])
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    frame.insert(0, "customer_id", [f"C{i}" for i in range(n)])
    frame.insert(1, "snapshot_date", pd.Timestamp("2024-06-01"))
    frame["label"] = (rng.random(n) < sigmoid(logit)).astype(np.int8)
    return frame


def _cfg(**kw) -> ModelConfig:
    base = {
        "candidates": ("lightgbm", "logistic"),
        "tuning": NO_TUNING,
        "cv_folds": 4,
        "calibration": "sigmoid",
    }
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize(("signal", "winner"), [("linear", "logistic"), ("interaction", "lightgbm")])
def test_selection_picks_the_candidate_that_fits_the_signal(signal, winner):
    frame = _frame(3000, seed=1, signal=signal)
    cfg = _cfg(promotion_metric="log_loss")
    split = out_of_time_split(frame, cfg)
    features = [f"x{i}" for i in range(6)]
    trained = train_candidates(split, features, [], cfg)
    sel = trained.selection
    assert sel.chosen == winner, sel.reason
    loser = "lightgbm" if winner == "logistic" else "logistic"
    assert sel.valid_metrics[winner]["log_loss"] < sel.valid_metrics[loser]["log_loss"]
    assert winner in sel.reason and "out-of-fold log_loss" in sel.reason
    # the choice holds on the held-out test customers too
    y = split.test["label"].to_numpy()
    assert evaluate.log_loss(y, trained.predict(winner, split.test)) < evaluate.log_loss(
        y, trained.predict(loser, split.test)
    )


def test_a_later_candidate_must_win_by_more_than_the_selection_margin():
    frame = _frame(3000, seed=1, signal="linear")  # logistic (listed second) wins on validation, see above
    features = [f"x{i}" for i in range(6)]
    cfg = _cfg(promotion_metric="log_loss")
    gap = None
    for margin, expected in ((0.0, "logistic"), (0.5, "lightgbm")):
        sel = train_candidates(
            out_of_time_split(frame, cfg), features, [], cfg.model_copy(update={"selection_margin": margin})
        ).selection
        lgbm, logit = sel.valid_metrics["lightgbm"]["log_loss"], sel.valid_metrics["logistic"]["log_loss"]
        gap = (lgbm - logit) / lgbm
        assert sel.chosen == expected, sel.reason
    assert 0 < gap < 0.5  # the win is real but smaller than the 50% margin
    assert "within model.selection_margin 50% of lightgbm" in sel.reason
    # the rule itself, both directions
    assert evaluate.better("pr_auc", 0.202, 0.2) and not evaluate.better("pr_auc", 0.202, 0.2, margin=0.01)
    assert evaluate.better("log_loss", 0.197, 0.2, margin=0.01) and not evaluate.better(
        "log_loss", 0.199, 0.2, 0.01
    )


def test_ties_go_to_the_first_listed_candidate():
    frame = _frame(1200, seed=2, signal="linear")
    cfg = _cfg(candidates=("logistic", "lightgbm", "blend"))
    sel = train_candidates(out_of_time_split(frame, cfg), [f"x{i}" for i in range(6)], [], cfg).selection
    # a blend whose weight ends at 0 or 1 equals a member: it must not win a tie against it
    w = sel.developed["blend"].settings["weights"]["lightgbm"]
    if w in (0.0, 1.0):
        assert sel.chosen != "blend"
    assert sel.listed == ["logistic", "lightgbm", "blend"]


def test_unknown_candidate_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match="available"):
        resolve(["lightgbm", "xgboost"])
    assert resolve(["blend"]) == ["lightgbm", "logistic", "blend"]  # members first
    assert {"lightgbm", "logistic", "blend"} <= set(CANDIDATES)


def _three_candidates(valid_rotation_max_rows: int):
    """All three candidates on a synthetic set with categoricals and missing values (out of time): (trained,
    split)."""
    ts = make_training_set(n_customers=700, snapshots=4, seed=3)
    cfg = ModelConfig(
        candidates=("lightgbm", "logistic", "blend"),
        tuning=NO_TUNING,
        lightgbm=LightGBMConfig(n_estimators=60),
        valid_rotation_max_rows=valid_rotation_max_rows,
    )
    split = out_of_time_split(ts.frame, cfg)
    return train_candidates(split, FEATURES, CATEGORICAL, cfg), split


@pytest.fixture(scope="module")
def developed():
    return _three_candidates(valid_rotation_max_rows=0)  # one validation group, as on large sets


def test_small_out_of_time_sets_develop_on_every_customer_group_and_calibrate_out_of_fold():
    trained, split = _three_candidates(valid_rotation_max_rows=50_000)
    assert len(split.folds) == 4 and split.calibration_rows is None
    sel = trained.selection
    valid_rows = np.concatenate([va for _, va in split.folds])
    assert sorted(sel.valid_rows) == sorted(valid_rows)  # every validation-snapshot row, once
    for name in ("lightgbm", "logistic", "blend"):
        dev = sel.developed[name]
        assert len(dev.fold_fits) == 4 and np.isfinite(dev.oof[sel.valid_rows]).all()
        # calibrated on the out-of-fold predictions: every one from a fit that never saw the customer
        assert np.allclose(trained.calibration_scores[name], dev.oof[sel.valid_rows])
    assert len(trained.calibration_labels) == len(valid_rows)
    # the refit learns every row; LightGBM's rounds: the folds' mean early-stopped rounds, scaled
    fits = sel.developed["lightgbm"].fold_fits
    ratio = len(split.development) / np.mean([len(tr) for tr, _ in split.folds])
    expected = max(1, round(np.mean([f.best_iteration for f in fits]) * ratio))
    assert sel.final["lightgbm"].booster.num_trees() == expected


@pytest.mark.parametrize("name", ["lightgbm", "logistic", "blend"])
def test_contributions_of_every_candidate_sum_to_its_log_odds(developed, name):
    trained, split = developed
    fitted = trained.selection.final[name]
    frame = split.test.copy()
    frame.iloc[:5, frame.columns.get_loc("region")] = None  # missing categories
    frame.iloc[5:10, frame.columns.get_loc("days_since_last_login")] = np.nan
    x = lightgbm_array(frame, FEATURES, trained.categories)
    for method in ("path", "treeshap"):
        c = fitted.contributions(x, method)
        assert c.shape == (len(frame), len(FEATURES) + 1)
        assert np.allclose(c.sum(axis=1), fitted.log_odds(x), atol=1e-8)
        assert np.abs(c[:, :-1]).sum() > 0


def test_blend_contributions_are_the_weighted_sum_of_its_members(developed):
    trained, split = developed
    final = trained.selection.final
    blend = final["blend"]
    x = lightgbm_array(split.test, FEATURES, trained.categories)
    expected = sum(w * final[m].contributions(x, "path") for m, w in blend.weights.items())
    assert np.allclose(blend.contributions(x, "path"), expected)
    assert sum(blend.weights.values()) == pytest.approx(1.0)


def test_logistic_contributions_follow_the_linear_signal(developed):
    trained, split = developed
    logistic = trained.selection.final["logistic"]
    x = lightgbm_array(split.test, FEATURES, trained.categories)
    c = logistic.contributions(x)
    complaints = FEATURES.index("complaints_30d")
    # more complaints -> larger contribution (the generating model adds 0.8 log-odds per complaint)
    order = np.argsort(x[:, complaints])
    assert np.corrcoef(x[order, complaints], c[order, complaints])[0, 1] > 0.8


def test_out_of_time_refit_uses_train_and_validation_rows_and_scales_the_rounds(developed):
    trained, split = developed
    sel = trained.selection
    assert trained.development_rows == len(split.development)  # every train and validation row
    lgbm = sel.final["lightgbm"]
    best = sel.developed["lightgbm"].fold_fits[0].best_iteration
    ratio = len(split.development) / len(split.train)
    assert lgbm.booster.num_trees() == max(1, round(best * ratio))
    # without bagging, the first tree's root counts exactly the rows it was fitted on
    cfg = ModelConfig(candidates=("lightgbm",), tuning=NO_TUNING, lightgbm=LightGBMConfig(subsample=1.0))
    refit = train_candidates(split, FEATURES, CATEGORICAL, cfg).fitted()
    root = refit.booster.dump_model()["tree_info"][0]["tree_structure"]
    assert root["internal_count"] == len(split.development)


def test_single_snapshot_refit_uses_every_non_test_row_after_grouped_cv():
    ts = make_training_set(n_customers=1500, snapshots=1, seed=4)
    cfg = ModelConfig(
        candidates=("lightgbm",), tuning=NO_TUNING, cv_folds=3, lightgbm=LightGBMConfig(subsample=1.0)
    )
    split = out_of_time_split(ts.frame, cfg)
    trained = train_candidates(split, FEATURES, CATEGORICAL, cfg)
    assert len(split.folds) == 3
    assert trained.development_rows == len(ts.frame) - len(split.test)
    root = trained.fitted().booster.dump_model()["tree_info"][0]["tree_structure"]
    assert root["internal_count"] == len(ts.frame) - len(split.test)
    # every development row has an out-of-fold prediction (the calibration's input)
    assert np.isfinite(trained.selection.developed["lightgbm"].oof).all()
    assert len(trained.selection.valid_rows) == trained.development_rows


def test_customer_folds_are_grouped_stratified_and_cover_every_row():
    ts = make_training_set(n_customers=300, snapshots=3, seed=6)
    frame = ts.frame.sample(frac=1.0, random_state=0)
    folds = customer_folds(frame, 4, seed=1)
    ids = frame["customer_id"].to_numpy()
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen) == list(range(len(frame)))  # each row validated exactly once
    for tr, va in folds:
        assert not set(ids[tr]) & set(ids[va])  # no customer on both sides of a fold
    valid_sets = [set(ids[va]) for _, va in folds]
    for i in range(len(folds)):
        for j in range(i + 1, len(folds)):
            assert not valid_sets[i] & valid_sets[j]
    rate = frame["label"].mean()
    for _, va in folds:
        assert abs(frame["label"].to_numpy()[va].mean() - rate) < 0.05
    again = customer_folds(frame, 4, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_optuna_search_is_deterministic_for_a_seed_and_trial_budget():
    frame = _frame(800, seed=5, signal="interaction")
    cfg = _cfg(
        candidates=("lightgbm",),
        tuning=TuningConfig(trials=4, seconds=600),
        lightgbm=LightGBMConfig(n_estimators=60, early_stopping_rounds=10),
        cv_folds=3,
    )
    features = [f"x{i}" for i in range(6)]
    split = out_of_time_split(frame, cfg)
    a = train_candidates(split, features, [], cfg)
    b = train_candidates(split, features, [], cfg)
    ta, tb = a.selection.developed["lightgbm"].trials, b.selection.developed["lightgbm"].trials
    assert len(ta) == 4
    pd.testing.assert_frame_equal(ta, tb)
    assert ta["num_leaves"].nunique() > 1  # the trials really differ
    # trial 0 is the sized settings
    sized = scaled_params(cfg.lightgbm, len(split.folds[0][0]), 1)
    assert ta.loc[0, "learning_rate"] == sized["learning_rate"]
    metric = f"valid_{cfg.promotion_metric}"
    assert a.selection.valid_metrics["lightgbm"][cfg.promotion_metric] == pytest.approx(ta[metric].max())
    assert np.array_equal(a.predict("lightgbm", split.test), b.predict("lightgbm", split.test))


def test_tuning_is_skipped_above_max_rows_and_says_so():
    frame = _frame(600, seed=7, signal="linear")
    cfg = _cfg(candidates=("lightgbm",), tuning=TuningConfig(trials=3, max_rows=100))
    trained = train_candidates(out_of_time_split(frame, cfg), [f"x{i}" for i in range(6)], [], cfg)
    dev = trained.selection.developed["lightgbm"]
    assert dev.trials is None and "max_rows" in dev.note


def test_sized_settings_follow_the_data():
    small = scaled_params(LightGBMConfig(), rows=3000, positives=800)
    large = scaled_params(LightGBMConfig(), rows=1_000_000, positives=30_000)
    rare = scaled_params(LightGBMConfig(), rows=3000, positives=40)
    assert small["min_child_samples"] < large["min_child_samples"] <= 200
    assert rare["num_leaves"] < small["num_leaves"] <= 31
    assert rare["min_child_samples"] > small["min_child_samples"]  # a leaf should hold a few churners
    fixed = scaled_params(LightGBMConfig(num_leaves=12, min_child_samples=33), rows=3000, positives=800)
    assert fixed["num_leaves"] == 12 and fixed["min_child_samples"] == 33


def test_select_works_on_a_single_out_of_time_fold_without_refit():
    frame = _frame(600, seed=8, signal="linear")
    x = frame[[f"x{i}" for i in range(6)]].to_numpy()
    y = frame["label"].to_numpy(dtype=float)
    folds = [(np.arange(400), np.arange(400, 600))]
    ctx = Context(Schema([f"x{i}" for i in range(6)], {}), _cfg())
    sel = select(x, y, folds, ctx, refit=False)
    assert sel.final["logistic"] is sel.developed["logistic"].fold_fits[0]
    assert np.isnan(sel.developed["logistic"].oof[:400]).all()
    assert np.isfinite(sel.developed["logistic"].oof[400:]).all()


@pytest.mark.parametrize("name", ["lightgbm", "logistic", "blend"])
def test_calibration_fitted_on_validation_keeps_the_order_of_the_raw_score(developed, name):
    trained, split = developed
    x = lightgbm_array(split.test, FEATURES, trained.categories)
    raw = trained.selection.final[name].predict_raw(x)
    p = trained.predict(name, split.test)
    assert np.array_equal(np.argsort(p, kind="stable"), np.argsort(raw, kind="stable"))
    assert len(np.unique(p)) == len(np.unique(raw))  # strictly: no two raw scores merged into one step
    # fitted on the fit-before-the-refit's predictions of every validation-snapshot row (the customers held
    # out of that fit and the known ones): its validation predictions on the held-out customers among them
    dev = trained.selection.developed[name]
    assert len(trained.calibration_labels) == len(split.calibration_rows) > len(trained.selection.valid_rows)
    held = np.isin(split.calibration_rows, trained.selection.valid_rows)
    assert np.allclose(trained.calibration_scores[name][held], dev.oof[trained.selection.valid_rows])
    calibrated = trained.calibrators[name].transform(sigmoid(trained.calibration_scores[name]))
    assert abs(calibrated.mean() - trained.calibration_labels.mean()) < 0.01


def test_large_sets_refit_only_the_chosen_candidate(monkeypatch):
    import churn_pipeline.models.candidates as candidates

    frame = _frame(1500, seed=10, signal="linear")
    cfg = _cfg(promotion_metric="log_loss")
    split = out_of_time_split(frame, cfg)
    monkeypatch.setattr(candidates, "REFIT_ALL_MAX_ROWS", 100)
    sel = train_candidates(split, [f"x{i}" for i in range(6)], [], cfg).selection
    assert sel.chosen == "logistic"
    assert sel.final["lightgbm"] is sel.developed["lightgbm"].fold_fits[0]
    assert "not refitted" in sel.developed["lightgbm"].note
    assert all(sel.final["logistic"] is not f for f in sel.developed["logistic"].fold_fits)


def test_logistic_is_not_underfit_on_a_linear_signal():
    """On data whose log-odds are linear in the raw numbers (scales from 0.01 to 1,000, so the signed-log term
    and the quantile bins have to recover a straight line), with a categorical and 5% positives like churn
    data, the logistic candidate (C chosen on validation by the default metric) is within 1% of the validation
    log loss of a plain scikit-learn logistic regression (one-hot + standardised numbers, default C) fitted on
    the same rows. Enough rows (20,000) that the bins' extra coefficients cost little variance: a gap here is
    bias (too strong a penalty, a poor optimum, a transform that cannot follow the signal)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(5)
    n, scales = 30_000, np.array([0.01, 1.0, 30.0, 1000.0, 5.0])
    num = rng.normal(size=(n, len(scales))) * scales
    plan = rng.integers(0, 3, n)
    logit = -3.6 + num @ (np.array([0.9, -0.7, 0.5, 0.4, -0.3]) / scales) + np.array([0.0, 0.6, -0.6])[plan]
    y = (rng.random(n) < sigmoid(logit)).astype(np.float64)
    x = np.column_stack([num, plan]).astype(np.float32)
    tr, va = np.arange(20_000), np.arange(20_000, n)
    schema = Schema([f"x{i}" for i in range(6)], {5: 3})
    ctx = Context(schema, _cfg(candidates=("logistic",)))
    oof = CANDIDATES["logistic"](ctx).develop(x, y, [(tr, va)]).oof[va]

    scaler, onehot = StandardScaler().fit(num[tr]), OneHotEncoder(sparse_output=False).fit(plan[tr, None])

    def design(rows: np.ndarray) -> np.ndarray:
        return np.column_stack([scaler.transform(num[rows]), onehot.transform(plan[rows, None])])

    plain = LogisticRegression(max_iter=1000).fit(design(tr), y[tr]).predict_proba(design(va))[:, 1]
    ours, reference = evaluate.log_loss(y[va], sigmoid(oof)), evaluate.log_loss(y[va], plain)
    assert ours < reference * 1.01, (ours, reference)
