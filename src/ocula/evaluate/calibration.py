"""Temperature scaling (Guo et al., 2017): one number that makes the probabilities honest.

A network trained with label smoothing and strong augmentation is under-confident: it says 40%
for predictions that are right 80% of the time. Dividing the logits by a temperature T fitted on
held-out images (minimum log loss) fixes the confidence without changing a single prediction.
``fit_temperature`` needs only probabilities: log-probabilities differ from the logits by a
constant per image, which the softmax cancels.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

BOUNDS = (0.05, 20.0)  # temperatures outside this range mean a broken model, not a calibration


def rescale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the probabilities a model with its logits divided by T would give."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _log_loss(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    rows = rescale(probabilities, temperature)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(rows, 1e-12, 1.0))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature with the lowest log loss on (probabilities, labels), searched on log T."""
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on no images")
    labels = np.asarray(labels, dtype=np.int64)
    result = minimize_scalar(lambda log_t: _log_loss(probabilities, labels, float(np.exp(log_t))),
                             bounds=tuple(np.log(BOUNDS)), method="bounded", options={"xatol": 1e-4})
    best = float(np.exp(result.x))
    # The search is bounded; never return a temperature worse than leaving the model as it is.
    return best if _log_loss(probabilities, labels, best) <= _log_loss(probabilities, labels, 1.0) else 1.0
