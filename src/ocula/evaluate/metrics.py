"""Classification metrics as pure functions of (labels, probabilities) numpy arrays.

``labels`` is an int array [N] of class indices, ``probs`` a float array [N, C] whose rows
sum to one. Nothing here knows about images, models or files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONFIDENT = 0.9  # a mistake made with at least this probability is a label-noise suspect
TARGET_ACCURACY = 0.95  # the accuracy selective prediction names a confidence threshold for
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # the reject thresholds the report tabulates


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


def _answered(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Coverage and accuracy when only images with top probability >= ``threshold`` are answered."""
    kept = confidence >= threshold
    return {"threshold": float(threshold), "coverage": float(kept.mean()) if len(kept) else 0.0,
            "accuracy": float(correct[kept].mean()) if kept.any() else None}


def selective(labels: np.ndarray, probs: np.ndarray, target: float = TARGET_ACCURACY,
              points: int = 50) -> dict[str, Any]:
    """Selective prediction: answer only when the top probability reaches a threshold.

    Returns the accuracy-against-coverage curve (``points`` thresholds at even coverage steps),
    the rows of ``THRESHOLDS``, and the lowest threshold (short: what a user passes as
    ``--min-confidence``) whose answered images reach ``target`` accuracy, with the coverage it
    keeps; ``threshold`` is None when no threshold reaches it.
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    out: dict[str, Any] = {"target_accuracy": float(target), "threshold": None, "coverage": 0.0, "accuracy": None,
                           "curve": [], "table": [_answered(confidence, correct, t) for t in THRESHOLDS]}
    if not len(labels):
        return out
    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # the last image of each tie
    steps = np.unique(np.linspace(0, len(order) - 1, min(points, len(order))).round().astype(int))
    out["curve"] = [{"threshold": float(ranked[i]), "coverage": (i + 1) / len(order), "accuracy": float(running[i])}
                    for i in steps]
    reaching = ends[running[ends] >= target]
    if len(reaching):
        last = reaching[-1]
        threshold = 0.0 if last == len(order) - 1 else _short(float(ranked[last]), confidence, last + 1)
        out.update(_answered(confidence, correct, threshold))
    return out


def _short(value: float, confidence: np.ndarray, answered: int) -> float:
    """``value`` to 3 decimals (rounded down) when that answers the same images, else to 6."""
    shorter = float(np.floor(value * 1000) / 1000)
    return shorter if int(np.sum(confidence >= shorter)) == answered else float(np.floor(value * 1e6) / 1e6)


def selective_sentence(result: dict[str, Any], images: str = "photos") -> str:
    """The plain-words verdict of ``selective``."""
    target = result["target_accuracy"]
    if result["threshold"] is None:
        best = max((row for row in result["curve"] if row["coverage"] >= 0.05), key=lambda row: row["accuracy"],
                   default=None)
        reach = (f"; at best the most confident {best['coverage']:.0%} are right {best['accuracy']:.1%} of the time"
                 if best else "")
        return f"No confidence threshold reaches {target:.0%} accuracy on these images{reach}"
    if result["threshold"] == 0.0:
        return f"Every image is answered at {result['accuracy']:.1%} accuracy: {target:.0%} needs no threshold"
    return (f"Answer {result['coverage']:.0%} of {images} at {result['accuracy']:.1%} accuracy (target "
            f"{target:.0%}) with --min-confidence {result['threshold']:g}; ask for another photo for the rest")


def summarize(labels: np.ndarray, probs: np.ndarray, class_names: list[str], *, top_k: int = 5,
              target_accuracy: float = TARGET_ACCURACY) -> dict[str, Any]:
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
        "selective": selective(labels, probs, target_accuracy),
        "confident_mistakes": int(np.sum(wrong & (confidence >= CONFIDENT))),
        "mistakes": int(wrong.sum()),
    }
