"""The report's figures as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 100


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def learning_curves(epochs: list[dict[str, Any]]) -> bytes | None:
    """Accuracy and loss per epoch, training and validation; the head/backbone switch marked."""
    rows = [e for e in epochs if "validation:accuracy" in e]
    if not rows:
        return None
    x = [e["epoch"] for e in rows]
    switches = [e["epoch"] for prev, e in zip(rows, rows[1:]) if e.get("phase") != prev.get("phase")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for split, style in (("train", "-o"), ("validation", "-s")):
            values = [e.get(f"{split}:{metric}") for e in rows]
            if any(v is not None for v in values):
                ax.plot(x, [np.nan if v is None else v for v in values], style, markersize=3, label=split)
        for epoch in switches:
            ax.axvline(epoch - 0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(loc="center right")
    if switches:
        axes[0].annotate(" backbone unfrozen", (switches[0] - 0.5, 0.9), xycoords=("data", "axes fraction"),
                         fontsize=8, color="grey")
    return _png(fig)


def confusion_heatmap(matrix: list[list[int]], classes: list[str]) -> bytes:
    """Row-normalised confusion matrix (each row: where that class's images went)."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    n = len(classes)
    side = min(16.0, max(4.5, 0.16 * n + 3))
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    font = 9 if n <= 20 else max(3.5, 9 - n / 12)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return _png(fig)


def reliability_diagram(calibration: dict[str, Any]) -> bytes:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    bins = [b for b in calibration["bins"] if b["count"]]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfectly calibrated")
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    ax.bar(centres, [b["accuracy"] for b in bins], width=0.09, alpha=0.7, label="accuracy in bin")
    ax.plot(centres, [b["confidence"] for b in bins], "o-", color="C1", markersize=4,
            label="mean confidence in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the top prediction")
    ax.set_ylabel("accuracy")
    ax.set_title(f"ECE {calibration['ece']:.3f}")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def coverage_curve(selective: dict[str, Any]) -> bytes | None:
    """Accuracy of the answered images against the share answered; the target and its threshold marked."""
    curve = selective["curve"]
    if not curve:
        return None
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot([row["coverage"] for row in curve], [row["accuracy"] for row in curve], "-", color="C0",
            label="answer only above a threshold")
    ax.axhline(selective["target_accuracy"], color="grey", linestyle="--", linewidth=1,
               label=f"target {selective['target_accuracy']:.0%}")
    if selective["threshold"] is not None:
        ax.plot([selective["coverage"]], [selective["accuracy"]], "o", color="C3",
                label=f"--min-confidence {selective['threshold']:g}")
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("coverage (share of images answered)")
    ax.set_ylabel("accuracy of the answered images")
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def robustness_bars(shift: dict[str, Any]) -> bytes:
    """Accuracy per corruption at each severity, against the clean accuracy."""
    names = list(shift["by_corruption"])
    severities = shift["by_corruption"][names[0]]["severities"]
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(names) + 2), 4.2))
    width = 0.8 / len(severities)
    for k, severity in enumerate(severities):
        values = [shift["by_corruption"][name]["accuracy"][k] for name in names]
        ax.bar(np.arange(len(names)) + (k - (len(severities) - 1) / 2) * width, values, width,
               label=f"severity {severity}", color=plt.cm.Oranges(0.35 + 0.25 * k))
    ax.axhline(shift["clean_accuracy"], color="C0", linewidth=1.5, label=f"clean {shift['clean_accuracy']:.3f}")
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, ncol=4, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def error_gallery(items: list[Any], columns: int = 4) -> bytes | None:
    """Thumbnails of the most confident mistakes with their true and predicted labels."""
    return thumbnail_sheet([item.thumbnail for item in items],
                           [f"true: {item.true_label}\npredicted: {item.predicted_label} ({item.probability:.2f})"
                            for item in items], columns)


def thumbnail_sheet(thumbnails: list[np.ndarray], titles: list[str], columns: int = 4) -> bytes | None:
    """A contact sheet: HWC uint8 thumbnails in a grid, each with its title (None when empty)."""
    if not thumbnails:
        return None
    rows = (len(thumbnails) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, thumbnails, titles):
        ax.imshow(image)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def roc_pr_curves(labels: np.ndarray, probs: np.ndarray, classes: list[str], most: int = 8) -> bytes:
    """ROC and precision-recall curves: of class 1 for a binary problem, one-vs-rest per class
    (the ``most`` largest) otherwise; the area in each legend."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    shown = [1] if probs.shape[1] == 2 else list(np.argsort(-np.bincount(labels, minlength=len(classes)))[:most])
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.2))
    for c in shown:
        truth = labels == c
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, probs[:, c])
        precision, recall, _ = precision_recall_curve(truth, probs[:, c])
        roc.plot(fpr, tpr, label=f"{classes[c]} (AUC {auc(fpr, tpr):.3f})")
        pr.plot(recall, precision, label=f"{classes[c]} (area {auc(recall, precision):.3f})")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    for ax, (x, y, title) in zip((roc, pr), (("false positive rate", "true positive rate", "ROC"),
                                             ("recall", "precision", "precision-recall"))):
        ax.set(xlabel=x, ylabel=y, title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
    return _png(fig)


def residuals(truth: np.ndarray, predicted: np.ndarray) -> bytes:
    """Predicted against actual, and residuals against predicted (a regression's quality)."""
    fig, (fit, spread) = plt.subplots(1, 2, figsize=(11, 4.2))
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    fit.scatter(truth, predicted, s=6, alpha=0.4)
    fit.plot([low, high], [low, high], color="grey", linestyle=":", linewidth=1)
    fit.set(xlabel="actual", ylabel="predicted", title="predicted vs actual")
    spread.scatter(predicted, truth - predicted, s=6, alpha=0.4)
    spread.axhline(0, color="grey", linestyle=":", linewidth=1)
    spread.set(xlabel="predicted", ylabel="actual - predicted", title="residuals")
    for ax in (fit, spread):
        ax.grid(alpha=0.3)
    return _png(fig)


def importance_bars(importances: dict[str, float], title: str, most: int = 20) -> bytes:
    """Horizontal bars, the largest on top."""
    items = sorted(importances.items(), key=lambda kv: -kv[1])[:most][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4c78a8")
    ax.set(title=title)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)
