"""Multi-label metrics: one image, several labels, each an independent probability.

``labels`` are N x K 0/1 arrays (an image may have several ones), ``probs`` N x K independent
probabilities; a label is predicted when its probability reaches its threshold (the card's,
tuned on validation by ``tune_thresholds``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under one label's precision-recall curve (scikit-learn's step-wise AP); None without positives."""
    if not truth.any():
        return None
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, scores))


def mean_average_precision(labels: np.ndarray, probs: np.ndarray) -> float:
    """mAP: the mean AP over the labels that have at least one positive image."""
    aps = [average_precision(labels[:, k], probs[:, k]) for k in range(labels.shape[1])]
    present = [a for a in aps if a is not None]
    return float(np.mean(present)) if present else 0.0


def predict_sets(probs: np.ndarray, thresholds: np.ndarray | list[float] | float = 0.5) -> np.ndarray:
    """N x K booleans: the labels predicted for each image."""
    return probs >= np.asarray(thresholds, dtype=probs.dtype if probs.dtype.kind == "f" else np.float64)


def subset_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Share of images whose whole label set is exactly right."""
    return float((predicted == labels.astype(bool)).all(1).mean()) if len(labels) else 0.0


def _f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def tune_thresholds(labels: np.ndarray, probs: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> list[float]:
    """Per label, the threshold of ``grid`` with the best F1 on these images (0.5 for a label with
    no positive image: nothing to tune on). Ties go to the threshold nearest 0.5."""
    truth = labels.astype(bool)
    chosen = []
    for k in range(labels.shape[1]):
        if not truth[:, k].any():
            chosen.append(0.5)
            continue
        best, best_t = -1.0, 0.5
        for t in sorted(grid, key=lambda t: abs(t - 0.5)):
            hit = probs[:, k] >= t
            f1 = _f1(float((hit & truth[:, k]).sum()), float((hit & ~truth[:, k]).sum()),
                     float((~hit & truth[:, k]).sum()))[2]
            if f1 > best + 1e-12:
                best, best_t = f1, float(t)
        chosen.append(best_t)
    return chosen


def summarize_multilabel(labels: np.ndarray, probs: np.ndarray, class_names: list[str],
                         thresholds: list[float] | None = None) -> dict[str, Any]:
    """Everything a multi-label report shows, JSON-ready. ``accuracy`` is the subset accuracy."""
    truth = labels.astype(bool)
    predicted = predict_sets(probs, thresholds if thresholds else 0.5)
    tp, fp, fn = (predicted & truth).sum(0), (predicted & ~truth).sum(0), (~predicted & truth).sum(0)
    per_label = []
    for k, name in enumerate(class_names):
        precision, recall, f1 = _f1(float(tp[k]), float(fp[k]), float(fn[k]))
        ap = average_precision(truth[:, k], probs[:, k])
        per_label.append({"label": name, "precision": round(precision, 4), "recall": round(recall, 4),
                          "f1": round(f1, 4), "ap": None if ap is None else round(ap, 4),
                          "support": int(truth[:, k].sum()), "predicted": int(predicted[:, k].sum()),
                          "threshold": float(thresholds[k]) if thresholds else 0.5})
    micro = _f1(float(tp.sum()), float(fp.sum()), float(fn.sum()))
    present = [row for row in per_label if row["support"]]
    wrong = predicted != truth
    return {
        "multi_label": True, "n": int(len(labels)), "labels": len(class_names),
        "mAP": round(mean_average_precision(truth, probs), 4),
        "micro_precision": round(micro[0], 4), "micro_recall": round(micro[1], 4), "micro_f1": round(micro[2], 4),
        "macro_f1": round(float(np.mean([row["f1"] for row in present])) if present else 0.0, 4),
        "accuracy": round(subset_accuracy(truth, predicted), 4),
        "hamming_loss": round(float(wrong.mean()) if wrong.size else 0.0, 4),
        "cardinality": round(float(truth.sum(1).mean()) if len(truth) else 0.0, 3),
        "predicted_cardinality": round(float(predicted.sum(1).mean()) if len(truth) else 0.0, 3),
        "per_label": per_label,
        "most_missed": [row["label"] for row in sorted(present, key=lambda r: (r["recall"], -r["support"]))[:5]],
        "false_positive_pairs": _confused_pairs(truth, predicted, class_names),
    }


def _confused_pairs(truth: np.ndarray, predicted: np.ndarray, names: list[str], most: int = 10) -> list[list[Any]]:
    """(label present, label wrongly added, images): which false positive comes with which true label."""
    added = predicted & ~truth
    counts = truth.T.astype(np.int64) @ added.astype(np.int64)  # [present, added]
    np.fill_diagonal(counts, 0)
    order = np.dstack(np.unravel_index(np.argsort(-counts, axis=None, kind="stable"), counts.shape))[0]
    return [[names[i], names[j], int(counts[i, j])] for i, j in order[:most] if counts[i, j] > 0]
