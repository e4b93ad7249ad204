"""Accuracy under shift: from per-corruption, per-severity accuracies to what a user needs."""

from __future__ import annotations

from typing import Any

import numpy as np


def shift_summary(clean_accuracy: float, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarise ``results`` rows ``{"corruption", "severity", "accuracy"}`` against the clean
    accuracy of the same images: accuracy per corruption and severity, the mean accuracy
    and mean drop over all of them, the corruption that hurts most, and a sentence."""
    by: dict[str, dict[str, Any]] = {}
    for row in sorted(results, key=lambda r: (r["severity"])):
        entry = by.setdefault(row["corruption"], {"severities": [], "accuracy": []})
        entry["severities"].append(int(row["severity"]))
        entry["accuracy"].append(float(row["accuracy"]))
    for entry in by.values():
        entry["drop"] = [clean_accuracy - a for a in entry["accuracy"]]
        entry["mean_accuracy"] = float(np.mean(entry["accuracy"]))
        entry["mean_drop"] = clean_accuracy - entry["mean_accuracy"]
    mean_accuracy = float(np.mean([r["accuracy"] for r in results])) if results else clean_accuracy
    worst = max(by, key=lambda name: by[name]["mean_drop"]) if by else None
    mildest = min(by, key=lambda name: by[name]["mean_drop"]) if by else None
    sentence = (f"phone-photo shift: accuracy {clean_accuracy:.3f} on clean images, {mean_accuracy:.3f} on average "
                f"under {len(by)} corruptions x {len(results) // max(len(by), 1)} severities "
                f"(mean drop {clean_accuracy - mean_accuracy:.3f})")
    if worst is not None:
        sentence += (f"; {worst.replace('_', ' ')} hurts most ({by[worst]['accuracy'][-1]:.3f} at the strongest "
                     f"severity), {mildest.replace('_', ' ')} least")
    # Binomial standard error of one cell's accuracy, the largest over the cells (rows carry n).
    errors = [float(np.sqrt(r["accuracy"] * (1 - r["accuracy"]) / r["n"])) for r in results if r.get("n")]
    return {
        "clean_accuracy": float(clean_accuracy),
        "standard_error": max(errors) if errors else None,
        "mean_accuracy": mean_accuracy,
        "mean_drop": float(clean_accuracy - mean_accuracy),
        "hurts_most": worst,
        "hurts_least": mildest,
        "by_corruption": by,
        "sentence": sentence,
    }
