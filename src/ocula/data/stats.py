"""Cheap statistics of one image, for data capture and drift monitoring.

Computed on the decoded, resized array the model sees (before the centre crop), so a
baseline from validation images and a capture from live requests measure the same thing,
whatever size the original photo had. Each costs well under a millisecond at 256 px.
"""

from __future__ import annotations

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
