"""Which labels are probably wrong: confident learning on out-of-fold probabilities.

Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels"
(JAIR 2021); cleanlab implements it, and this module follows cleanlab's default
(``find_label_issues(filter_by="prune_by_noise_rate")``, ranked by self-confidence):

1. per class j, a threshold t_j: the mean probability of j over the images labelled j;
2. the confident joint C[i, j]: images labelled i whose probability of j reaches t_j (the most
   probable such j when several do), calibrated so each row sums to the count of label i;
3. for every off-diagonal cell, the n = C[i, j] images labelled i with the largest margin
   p(j) - p(i) are flagged: the data set is estimated to hold about that many such errors;
4. images whose given label is also the most probable class are not flagged;
5. the flagged images ranked by self-confidence p(given label), lowest first.

Probabilities must be out-of-sample (each image scored by a model that did not train on it),
or the model's memory of a wrong label hides it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LabelIssues:
    """``order``: indices of the flagged images, most likely mislabelled first."""

    order: np.ndarray
    self_confidence: np.ndarray  # p(given label) per image, all images
    suggested: np.ndarray  # most probable class per image, all images
    noise_rate: float  # share of images the confident joint estimates to be mislabelled


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the calibrated confident joint [K, K] of counts, each image's confident class or -1)."""
    n, k = probs.shape
    thresholds = np.array([probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])
    above = probs >= thresholds - 1e-6
    masked = np.where(above, probs, -np.inf)
    confident = np.where(above.any(1), masked.argmax(1), -1)
    joint = np.zeros((k, k))
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    label_counts = np.bincount(labels, minlength=k)
    rows = joint.sum(1, keepdims=True)
    joint = np.where(rows > 0, joint / np.maximum(rows, 1) * label_counts[:, None], 0)
    return joint, confident


def find_label_issues(probs: np.ndarray, labels: np.ndarray) -> LabelIssues:
    """Confident learning's prune-by-noise-rate; see the module docstring."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = probs.shape
    joint, _ = confident_joint(probs, labels)
    flagged = np.zeros(n, dtype=bool)
    self_confidence = probs[np.arange(n), labels]
    for i in range(k):
        members = np.flatnonzero(labels == i)
        if len(members) < 2:  # a class of one image: nothing to learn its threshold from
            continue
        for j in range(k):
            count = int(round(joint[i, j])) if j != i else 0
            if count == 0:
                continue
            margin = probs[members, j] - probs[members, i]
            flagged[members[np.argsort(-margin, kind="stable")[:count]]] = True
    flagged &= probs.argmax(1) != labels  # the model agrees with the label: not an issue (as cleanlab)
    order = np.flatnonzero(flagged)
    order = order[np.argsort(self_confidence[order], kind="stable")]
    off_diagonal = joint.sum() - np.trace(joint)
    return LabelIssues(order=order, self_confidence=self_confidence, suggested=probs.argmax(1),
                       noise_rate=float(off_diagonal / max(n, 1)))


def precision_recall_at(order: np.ndarray, truth: np.ndarray, count: int) -> tuple[float, float]:
    """Of the first ``count`` of ``order``, the share that are in ``truth`` (precision), and the
    share of ``truth`` found (recall). For benchmarks with injected errors."""
    top = set(order[:count].tolist())
    hits = len(top & set(np.asarray(truth).tolist()))
    return hits / max(len(top), 1), hits / max(len(truth), 1)
