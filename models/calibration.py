"""Probability calibration fitted on held-out (validation) predictions, so that 0.3 means about 30%.

`isotonic`: a monotone step function of the raw probability. Within one step all customers would get the same
probability, which would make the at-risk ranking arbitrary there; ties are broken by mixing in a tiny share
(1e-6) of the raw probability, so the calibrated score ranks exactly like the booster.
Each isotonic step is shrunk by one pseudo-customer towards the overall validation churn rate, so no
probability is exactly 0 or 1.
`sigmoid` (Platt): a logistic regression on the raw log-odds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from churn_pipeline.core.errors import DataValidationError

_TIE_BREAK = 1e-6
_LOGIT_CLIP = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(q / (1 - q))


@dataclass
class Calibrator:
    """Maps raw model probabilities to calibrated ones; `fit` on validation predictions and labels."""

    method: str
    _isotonic: IsotonicRegression | None = field(default=None, repr=False)
    _platt: LogisticRegression | None = field(default=None, repr=False)
    _x: np.ndarray | None = field(default=None, repr=False)
    _y: np.ndarray | None = field(default=None, repr=False)

    def fit(self, raw: np.ndarray, y: np.ndarray) -> Calibrator:
        raw = np.asarray(raw, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        positives = int(y.sum())
        if positives == 0 or positives == y.size:
            raise DataValidationError(
                [
                    f"calibration: the validation rows hold {positives} churners out of {y.size}; both classes "
                    f"are needed to calibrate: use more validation snapshots (model.valid_snapshots), a longer "
                    f"label horizon (label.horizon_days) or more data"
                ]
            )
        if self.method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
            # Each step's rate gets one pseudo-customer at the overall rate, so a step without churners is a
            # small probability instead of exactly 0 (which would make one surprise churner cost log(0)).
            steps, size = np.unique(iso.predict(raw), return_counts=True)
            smoothed = (steps * size + y.mean()) / (size + 1.0)
            self._x = np.asarray(iso.X_thresholds_, dtype=np.float64)
            self._y = np.maximum.accumulate(np.interp(iso.y_thresholds_, steps, smoothed))
            self._isotonic = iso
        elif self.method == "sigmoid":
            self._platt = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw).reshape(-1, 1), y)
        else:
            raise ValueError(f"unknown calibration method {self.method!r}: use 'isotonic' or 'sigmoid'")
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64).ravel()
        if self._isotonic is not None:
            # a convex mix stays inside [0, 1] and is strictly increasing in raw
            return (1 - _TIE_BREAK) * np.interp(raw, self._x, self._y) + _TIE_BREAK * raw
        if self._platt is not None:
            return self._platt.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]
        raise RuntimeError("Calibrator.transform called before fit")


def fit_calibrator(raw_valid: np.ndarray, y_valid: np.ndarray, method: str) -> Calibrator:
    """A calibrator of `method` ('isotonic' | 'sigmoid') fitted on validation predictions."""
    return Calibrator(method=method).fit(raw_valid, y_valid)
