"""Per-customer feature contributions (LightGBM's own TreeSHAP, `pred_contrib`) and global importance.

Contributions are in log-odds of the raw (uncalibrated) booster: for one row they sum, with the bias
(the model's expected log-odds), to the raw score.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

BIAS_COLUMN = "_bias"


def contributions(
    booster: lgb.Booster,
    matrix: pd.DataFrame | np.ndarray,
    include_bias: bool = False,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """One column per feature (+ `_bias` when asked), indexed by `index` (default: the frame's own index);
    `matrix` is already LightGBM-ready (`lightgbm_matrix` or `lightgbm_array`)."""
    values = booster.predict(matrix, pred_contrib=True)
    names = list(booster.feature_name())
    if index is None:
        index = matrix.index if isinstance(matrix, pd.DataFrame) else pd.RangeIndex(len(values))
    out = pd.DataFrame(values[:, : len(names)], index=index, columns=names)
    if include_bias:
        out[BIAS_COLUMN] = values[:, len(names)]
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
