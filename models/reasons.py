"""Plain-words reasons and a suggested retention action per customer, from per-feature contributions.

A contribution is the feature's share of the customer's log-odds (`models.explain`: path or TreeSHAP): positive
pushes the churn risk up. The reasons of a customer are the features with the largest positive contributions, described
with the customer's own value of that feature (`features.catalog.describe`); the action follows the family of
the dominant (largest) reason through `ScoringConfig.actions`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_pipeline.core.config import ScoringConfig
from churn_pipeline.features.catalog import concept, describe, family

MAX_REASONS = 3


def reason_columns(k: int = MAX_REASONS) -> list[str]:
    return [f"reason_{i}" for i in range(1, k + 1)]


def top_reason_features(
    contributions: pd.DataFrame, k: int = MAX_REASONS, concepts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per customer, the column positions of its k largest positive contributions, largest first.

    With `concepts` (one label per column), a column whose concept already appeared among the customer's
    larger contributions is skipped, so the same fact is not given twice over different windows.
    Returns `(positions, valid)`, both shape (n, k): `valid` is False where the customer has fewer than k
    (distinct) positive contributions (its position there is meaningless).
    """
    values = contributions.to_numpy(dtype=np.float64, copy=True)
    n, f = values.shape
    # Enough candidates that k distinct concepts survive: a concept has at most one column per window.
    m = min(f, k if concepts is None else k * 4)
    # Non-positive (and NaN) contributions never become reasons: push them below every candidate.
    values[~(values > 0)] = -np.inf
    if f > m:
        cand = np.argpartition(-values, m - 1, axis=1)[:, :m]
    else:
        cand = np.broadcast_to(np.arange(f), (n, f)).copy()
    cand_vals = np.take_along_axis(values, cand, axis=1)
    order = np.argsort(-cand_vals, axis=1, kind="stable")
    positions = np.take_along_axis(cand, order, axis=1)
    keep = np.isfinite(np.take_along_axis(cand_vals, order, axis=1))
    if concepts is not None:
        codes = pd.factorize(np.asarray(concepts))[0][positions]  # (n, m)
        earlier = np.tril(np.ones((m, m), dtype=bool), k=-1)  # [j, i]: i comes before j
        repeated = ((codes[:, :, None] == codes[:, None, :]) & earlier & keep[:, None, :]).any(axis=2)
        keep &= ~repeated
    # Move the kept candidates to the front, in contribution order, and cut to k.
    front = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    positions = np.take_along_axis(positions, front, axis=1)
    valid = np.take_along_axis(keep, front, axis=1)
    if positions.shape[1] < k:
        pad = k - positions.shape[1]
        positions = np.hstack([positions, np.zeros((n, pad), dtype=positions.dtype)])
        valid = np.hstack([valid, np.zeros((n, pad), dtype=bool)])
    return positions, valid


def _python_value(v: object) -> object:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def reasons_and_actions(
    contributions: pd.DataFrame, features: pd.DataFrame, cfg: ScoringConfig, k: int = MAX_REASONS
) -> pd.DataFrame:
    """`reason_1..k` (plain words, None when fewer positive contributions) and `suggested_action`.

    `contributions` has one column per feature (extra columns such as a bias term are ignored) and the same
    index as `features`, whose values are the ones the reasons quote.
    """
    if not contributions.index.equals(features.index):
        raise ValueError(
            "contributions and features must share the same index (one row per customer, same order)"
        )
    names = [c for c in contributions.columns if c in features.columns]
    if not names:
        raise ValueError(
            f"no contribution column is a feature column: contributions {list(contributions.columns)[:10]}, "
            f"features {list(features.columns)[:10]}"
        )
    n = len(contributions)
    concepts = np.array([concept(name) for name in names], dtype=object)
    positions, valid = top_reason_features(contributions[names], k, concepts)
    out = np.full((n, k), None, dtype=object)

    # Group the chosen (customer, slot) pairs by feature; describe each distinct value of a feature once.
    rows, slots = np.nonzero(valid)
    feats = positions[rows, slots]
    order = np.argsort(feats, kind="stable")
    rows, slots, feats = rows[order], slots[order], feats[order]
    bounds = np.flatnonzero(np.diff(feats)) + 1
    for group_rows, group_slots in zip(np.split(rows, bounds), np.split(slots, bounds), strict=True):
        if not len(group_rows):
            continue
        name = names[positions[group_rows[0], group_slots[0]]]
        values = features[name].iloc[group_rows]
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        words = np.array([describe(name, _python_value(v)) for v in uniques], dtype=object)
        out[group_rows, group_slots] = words[codes]

    frame = pd.DataFrame(out, index=contributions.index, columns=reason_columns(k))
    action_of = np.array(
        [cfg.actions.get(family(name), cfg.default_action) for name in names] + [cfg.default_action],
        dtype=object,
    )
    dominant = np.where(valid[:, 0], positions[:, 0], len(names))
    frame["suggested_action"] = action_of[dominant]
    return frame
