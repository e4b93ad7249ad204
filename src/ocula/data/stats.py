"""Cheap statistics of one image, for data capture and drift monitoring.

Computed on the decoded, resized array the model sees (before the centre crop), so a
baseline from validation images and a capture from live requests measure the same thing,
whatever size the original photo had. Each costs well under a millisecond at 256 px.
"""

from __future__ import annotations

import math

import numpy as np

STATS = ("brightness", "contrast", "sharpness", "saturation")
DESCRIBE = {  # statistic -> (lower, higher): how a shift reads to a person
    "brightness": ("darker", "brighter"),
    "contrast": ("lower in contrast", "higher in contrast"),
    "sharpness": ("blurrier", "sharper"),
    "saturation": ("less colourful", "more colourful"),
    "megapixels": ("smaller", "larger"),
}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# The range of the training photos: their 0.5th percentile halved to their 99.5th doubled (every
# statistic is >= 0 and acts as a scale); an image outside it on any statistic is unlike every
# training photo: a blank frame (no contrast), noise (sharpness far above any photo), a photo
# half as bright as the darkest.
RANGE_QUANTILES = (0.005, 0.995)
RANGE_FACTOR = 2.0
MIN_RANGE_IMAGES = 30  # fewer photos than this say too little about what is typical


def image_stats(array: np.ndarray) -> dict[str, float]:
    """HWC uint8 RGB -> brightness and contrast (mean and std of luma, 0..255), sharpness
    (variance of the 4-neighbour Laplacian of luma over the variance of luma, so that darkening
    or a contrast change alone does not read as blur), saturation (mean of max-min over RGB)."""
    rgb = array.astype(np.float32)
    luma = rgb @ _LUMA
    laplacian = (4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:])
    return {
        "brightness": round(float(luma.mean()), 3),
        "contrast": round(float(luma.std()), 3),
        "sharpness": round(float(laplacian.var() / (luma.var() + 1.0)), 4),
        "saturation": round(float((rgb.max(axis=2) - rgb.min(axis=2)).mean()), 3),
    }


def typical_ranges(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """Per statistic of ``STATS``, the [low, high] of ``rows`` (one ``image_stats`` dict per
    training photo); empty when there are fewer than ``MIN_RANGE_IMAGES``."""
    if len(rows) < MIN_RANGE_IMAGES:
        return {}
    ranges = {}
    for name in STATS:
        low, high = np.quantile([row[name] for row in rows], RANGE_QUANTILES)
        ranges[name] = [round(float(low) / RANGE_FACTOR, 4), round(float(high) * RANGE_FACTOR, 4)]
    return ranges


def unlike(stats: dict[str, float], ranges: dict[str, list[float]]) -> str | None:
    """Why an image with these statistics is unlike the training photos, in words (the statistic
    furthest outside its range, as a ratio); None when every statistic is inside."""
    worst, reason = 1.0, None
    for name, (low, high) in ranges.items():
        value = stats[name]
        if low <= value <= high:
            continue
        ratio = value / high if value > high else (low / value if value > 0 else math.inf)
        if ratio > worst:
            worst = ratio
            words = DESCRIBE[name][0 if value < low else 1]
            reason = f"{words} than any training photo ({name} {value:.3g}; training photos {low:.3g} to {high:.3g})"
    return reason
