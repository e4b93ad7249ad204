"""Classification metrics as pure functions of (labels, probabilities) numpy arrays.

``labels`` is an int array [N] of class indices, ``probs`` a float array [N, C] whose rows
sum to one. Nothing here knows about images, models or files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONFIDENT = 0.9  # a mistake made with at least this probability is a label-noise suspect


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


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [true, predicted]."""
    return np.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the recall view); empty rows stay zero."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)


def per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(matrix).astype(float)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def averages(scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Macro (classes present in the data count equally) and support-weighted averages."""
    present = scores["support"] > 0
    weights = scores["support"] / max(scores["support"].sum(), 1)
    out: dict[str, dict[str, float]] = {"macro": {}, "weighted": {}}
    for name in ("precision", "recall", "f1"):
        out["macro"][name] = float(scores[name][present].mean()) if present.any() else 0.0
        out["weighted"][name] = float(np.sum(scores[name] * weights))
    return out


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean recall over the classes present in the data."""
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present])) if present.any() else 0.0


def most_confused(matrix: np.ndarray, n: int = 10) -> list[tuple[int, int, int]]:
    """The n largest off-diagonal cells as (true, predicted, count), largest first."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:n]
    return [(int(i // off.shape[1]), int(i % off.shape[1]), int(off.flat[i])) for i in order if off.flat[i] > 0]


def calibration(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error of the top prediction, with the reliability-diagram bins.

    ECE = sum over confidence bins of (share of samples) x |accuracy - mean confidence|.
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        acc = float(correct[mask].mean()) if count else None
        conf = float(confidence[mask].mean()) if count else None
        if count:
            ece += count / len(labels) * abs(acc - conf)
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "accuracy": acc, "confidence": conf})
    return {"ece": float(ece), "mean_confidence": float(confidence.mean()) if len(labels) else 0.0,
            "bins": rows}


def summarize(labels: np.ndarray, probs: np.ndarray, class_names: list[str], *, top_k: int = 5) -> dict[str, Any]:
    """Every metric a report shows, as plain JSON-ready values."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = len(class_names)
    predictions = probs.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, n_classes)
    scores = per_class(matrix)
    confidence = probs.max(axis=1)
    wrong = predictions != labels
    return {
        "n": int(len(labels)),
        "classes": list(class_names),
        "accuracy": accuracy(labels, probs),
        "top_k": int(min(top_k, n_classes)),
        "top_k_accuracy": top_k_accuracy(labels, probs, top_k),
        "balanced_accuracy": balanced_accuracy(matrix),
        "log_loss": log_loss(labels, probs),
        **averages(scores),
        "per_class": [
            {"class": name, **{key: (int(scores[key][i]) if key == "support" else float(scores[key][i]))
                               for key in ("precision", "recall", "f1", "support")}}
            for i, name in enumerate(class_names)
        ],
        "confusion": matrix.tolist(),
        "most_confused": [{"true": class_names[t], "predicted": class_names[p], "count": c,
                           "share_of_true": c / max(int(matrix[t].sum()), 1)}
                          for t, p, c in most_confused(matrix)],
        "calibration": calibration(labels, probs),
        "confident_mistakes": int(np.sum(wrong & (confidence >= CONFIDENT))),
        "mistakes": int(wrong.sum()),
    }
