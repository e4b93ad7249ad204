"""Classification metrics as pure functions of (labels, probabilities) numpy arrays."""

from __future__ import annotations

import numpy as np


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels)) if len(labels) else 0.0


def top_k_accuracy(labels: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of samples whose true class is among the k most probable (ties broken by index)."""
    if not len(labels):
        return 0.0
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    if not len(labels):
        return 0.0
    p = np.clip(probs[np.arange(len(labels)), labels], eps, 1.0)
    return float(-np.mean(np.log(p)))
