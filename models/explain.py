"""Per-customer feature contributions and global importance.

Two attributions, both in log-odds of the raw (uncalibrated) booster and both additive: for one row the
contributions plus the bias column sum exactly to the raw score.

- `treeshap`: LightGBM's own TreeSHAP (`pred_contrib`), exact Shapley values of the path-dependent
  tree model. Its cost grows with trees x leaves x depth^2 per row: ~0.3-0.4 ms per customer for a
  185-250-tree, depth-6 model on this 2-core machine, 6-8 s for a 20k-customer at-risk list.
- `path` (Saabas, as in `treeinterpreter`): follow the customer's own path down each tree and credit every
  change of expected value (the training-count-weighted mean of the leaves below a node) to the feature
  split on; the bias is the sum of the roots' expected values, as in TreeSHAP. One leaf
  lookup per tree (`pred_leaf`) and a sparse product: 0.2-0.5 s for the same 20k customers. It is not a
  Shapley value (it leans to features split near the leaves), but it is exactly what the trees did with
  this customer's values. On the 1M-customer benchmark's 20k listed customers, the dominant reason
  (concept) agreed with TreeSHAP's for 80%, TreeSHAP's dominant reason was among the path top 3 for 99.6%.

Training reports (MLflow plots, global importance) use TreeSHAP; the nightly reasons use
`scoring.attribution` (default `path`, see the README).
"""

from __future__ import annotations

from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import sparse

BIAS_COLUMN = "_bias"
Attribution = Literal["treeshap", "path"]


def contributions(
    booster: lgb.Booster,
    matrix: pd.DataFrame | np.ndarray,
    include_bias: bool = False,
    index: pd.Index | None = None,
    method: Attribution = "treeshap",
) -> pd.DataFrame:
    """One column per feature (+ `_bias` when asked), indexed by `index` (default: the frame's own index);
    `matrix` is already LightGBM-ready (`lightgbm_matrix` or `lightgbm_array`); `method` as in the module
    docstring."""
    if method == "treeshap":
        values = booster.predict(matrix, pred_contrib=True)
    elif method == "path":
        values = path_contributions(booster, matrix)
    else:
        raise ValueError(f"unknown attribution method {method!r}: use 'treeshap' or 'path'")
    names = list(booster.feature_name())
    if index is None:
        index = matrix.index if isinstance(matrix, pd.DataFrame) else pd.RangeIndex(len(values))
    out = pd.DataFrame(values[:, : len(names)], index=index, columns=names)
    if include_bias:
        out[BIAS_COLUMN] = values[:, len(names)]
    return out


def path_contributions(booster: lgb.Booster, matrix: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Saabas path attributions, shape (rows, features + 1): the last column is the bias."""
    table, offsets = path_table(booster)
    if len(matrix) == 0:
        return np.zeros((0, table.shape[1]))
    leaves = np.asarray(booster.predict(matrix, pred_leaf=True), dtype=np.int64).reshape(-1, len(offsets))
    n, trees = leaves.shape
    # one 1 per (row, tree) at the global index of the row's leaf; times the table sums the trees' paths
    reached = sparse.csr_matrix(
        (np.ones(n * trees), (leaves + offsets).ravel(), np.arange(0, n * trees + 1, trees)),
        shape=(n, table.shape[0]),
    )
    return np.asarray((reached @ table).todense())


def path_table(booster: lgb.Booster) -> tuple[sparse.csr_matrix, np.ndarray]:
    """(table, offsets): row `offsets[t] + leaf` of the sparse table holds, per feature, the sum of the
    changes of expected value on the path from tree t's root to that leaf, and the root's expected value
    in the last (bias) column.

    A node's expected value is the training-count-weighted mean of its leaves (TreeSHAP's expectation,
    so both methods share the bias and agree exactly on single-split trees).
    """
    dump = booster.dump_model()
    n_features = len(dump["feature_names"])
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    offsets = np.zeros(len(dump["tree_info"]), dtype=np.int64)
    total = 0
    for t, tree in enumerate(dump["tree_info"]):
        offsets[t] = total
        root = tree["tree_structure"]
        expected = _expected_values(root)
        # depth-first: (node, {feature: summed change of expected value on the way down})
        stack: list[tuple[dict, dict[int, float]]] = [(root, {})]
        while stack:
            node, credit = stack.pop()
            if "split_feature" not in node:
                leaf = total + node.get("leaf_index", 0)
                rows += [leaf] * (len(credit) + 1)
                cols += [*credit, n_features]
                vals += [*credit.values(), expected[id(root)]]
                continue
            feature = node["split_feature"]
            for child in (node["left_child"], node["right_child"]):
                down = dict(credit)
                down[feature] = down.get(feature, 0.0) + expected[id(child)] - expected[id(node)]
                stack.append((child, down))
        total += tree["num_leaves"]
    table = sparse.csr_matrix((vals, (rows, cols)), shape=(total, n_features + 1))
    return table, offsets


def _expected_values(root: dict) -> dict[int, float]:
    """id(node) -> count-weighted mean of the leaf values under it (its own value for a leaf)."""
    out: dict[int, float] = {}
    order: list[dict] = []
    stack = [root]
    while stack:  # parents before children; reversed, children come first
        node = stack.pop()
        order.append(node)
        if "split_feature" in node:
            stack += [node["left_child"], node["right_child"]]
    counts: dict[int, float] = {}
    for node in reversed(order):
        if "split_feature" not in node:
            out[id(node)] = float(node["leaf_value"])
            counts[id(node)] = float(node.get("leaf_count", 0))
            continue
        left, right = node["left_child"], node["right_child"]
        n_left, n_right = counts[id(left)], counts[id(right)]
        n = n_left + n_right
        out[id(node)] = (
            (n_left * out[id(left)] + n_right * out[id(right)]) / n
            if n > 0
            else float(node["internal_value"])
        )
        counts[id(node)] = n
    return out


def global_importance(booster: lgb.Booster, contrib: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per feature: total split gain, its share, and mean |contribution| (when contributions are given);
    sorted by mean |contribution| if available, else by gain."""
    names = list(booster.feature_name())
    gain = booster.feature_importance(importance_type="gain").astype(np.float64)
    total = gain.sum()
    table = pd.DataFrame(
        {"feature": names, "gain": gain, "gain_share": gain / total if total > 0 else np.zeros_like(gain)}
    )
    if contrib is not None:
        table["mean_abs_contribution"] = contrib[names].abs().mean().to_numpy()
        key = "mean_abs_contribution"
    else:
        key = "gain"
    return table.sort_values(key, ascending=False, kind="stable").reset_index(drop=True)
