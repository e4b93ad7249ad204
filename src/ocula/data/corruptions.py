"""Phone-photo corruptions at fixed severities: how a model will fare on customers' photos.

Where the ``phone`` augmentation draws a random mix of effects to train on, these apply one
effect at a time at three fixed, documented strengths, so that an evaluation can say which
effect hurts and by how much (``ocula evaluate --shift phone``). Each corruption takes the
decoded image as validation sees it before its centre crop (HWC uint8, shorter side resized)
and returns an image of the same shape; blur lengths are given for a 256-pixel shorter side
(a 224 crop) and scale with the image. Randomness (a direction, an angle, the noise) comes
from ``numpy.random.default_rng`` seeded per image and corruption, not per severity: the
three severities of one image share a direction, an angle and a noise pattern and differ
only in strength. A report is reproducible and safe to compute in threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torchvision.transforms.v2.functional import gaussian_blur

from ocula.data.phone import _motion_blur, _recompress, pixel_grid, warp
from ocula.errors import unknown

SEVERITIES = (1, 2, 3)
REFERENCE_SIDE = 256

# name -> (what it models, the parameter per severity 1, 2, 3)
CORRUPTIONS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "dark": ("under-exposure in a dim shop, stops of exposure", (-1.0, -1.75, -2.5)),
    "bright": ("over-exposure, highlights clipped, stops of exposure", (0.75, 1.25, 1.75)),
    "low_contrast": ("haze, glare or a flat tone curve, contrast factor", (0.7, 0.5, 0.35)),
    "colour_temperature": ("white balance off under warm or cold light, red/blue gain", (0.12, 0.2, 0.3)),
    "defocus_blur": ("missed focus, Gaussian sigma in pixels", (1.0, 2.0, 3.5)),
    "motion_blur": ("hand shake, streak length in pixels at a random angle", (6.0, 11.0, 18.0)),
    "sensor_noise": ("dim-light sensor noise, standard deviation in [0, 1] units", (0.03, 0.06, 0.1)),
    "jpeg": ("re-compression by apps and messengers, JPEG quality", (30, 15, 8)),
    "rotation_perspective": ("phone held askew and at an angle, degrees", (8.0, 15.0, 25.0)),
    "off_centre_crop": ("product not centred and framed close, share of the side kept", (0.8, 0.65, 0.5)),
}


def corruption_names() -> list[str]:
    return list(CORRUPTIONS)


def describe() -> list[dict[str, object]]:
    """What each corruption models and its parameter at each severity (for reports and docs)."""
    return [{"corruption": name, "models": what, "severities": list(values)}
            for name, (what, values) in CORRUPTIONS.items()]


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``image`` (HWC uint8) under corruption ``name`` at ``severity`` (1-3); same shape out."""
    if name not in CORRUPTIONS:
        raise unknown("corruption", name, CORRUPTIONS)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    value = CORRUPTIONS[name][1][severity - 1]
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name)])
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if name == "jpeg":
        return _recompress(x, int(value)).permute(1, 2, 0).numpy()
    scale = min(image.shape[:2]) / REFERENCE_SIDE
    out = _FLOAT_EFFECTS[name](x.float() / 255, float(value), scale, rng)
    return (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


# The mild end of the suite: what calibration fits on besides the clean validation photos.
MILD = tuple((name, severity) for name in CORRUPTIONS for severity in (1, 2))


def mild_copies(image: np.ndarray, position: int, copies: int) -> list[np.ndarray]:
    """``copies`` versions of the image at ``position`` of a set, each under another (corruption,
    severity 1 or 2) of ``MILD``; as ``position`` advances the pairs go round, so a set of images
    covers every pair about equally. Seeded by ``position``: the same set gives the same copies."""
    return [corrupt(image, *MILD[(position * copies + j) % len(MILD)], seed=position) for j in range(copies)]


def _exposure(x: torch.Tensor, stops: float, scale: float, rng: np.random.Generator) -> torch.Tensor:
    return x * 2 ** (stops / 2.2)  # a gain in linear light, applied to sRGB (gamma ~2.2)


def _contrast(x: torch.Tensor, factor: float, scale: float, rng: np.random.Generator) -> torch.Tensor:
    mean = x.mean()
    return (x - mean) * factor + mean


def _temperature(x: torch.Tensor, t: float, scale: float, rng: np.random.Generator) -> torch.Tensor:
    t = t if rng.random() < 0.5 else -t  # warm or cold, half of the images each
    return x * torch.tensor([1 + t, 1.0, 1 - t]).view(3, 1, 1)


def _defocus(x: torch.Tensor, sigma: float, scale: float, rng: np.random.Generator) -> torch.Tensor:
    sigma *= scale
    kernel = 2 * math.ceil(2.5 * sigma) + 1
    return gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def _motion(x: torch.Tensor, length: float, scale: float, rng: np.random.Generator) -> torch.Tensor:
    return _motion_blur(x, length * scale, float(rng.uniform(0, 180)))


def _noise(x: torch.Tensor, std: float, scale: float, rng: np.random.Generator) -> torch.Tensor:
    # Luminance noise mostly shared across channels, as phones suppress colour noise harder.
    shared = rng.standard_normal((1, *x.shape[1:]), dtype=np.float32)
    own = rng.standard_normal(tuple(x.shape), dtype=np.float32)
    return x + std * torch.from_numpy(0.9 * shared + 0.44 * own)


def _warp(x: torch.Tensor, corners: np.ndarray) -> torch.Tensor:
    height, width = x.shape[-2:]
    return warp(x, corners, pixel_grid(height, width), height, width)


def _rotation_perspective(x: torch.Tensor, degrees: float, scale: float, rng: np.random.Generator) -> torch.Tensor:
    height, width = x.shape[-2:]
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    centre = np.array([width / 2, height / 2])
    angle = math.radians(degrees if rng.random() < 0.5 else -degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = (corners - centre) @ rotation.T + centre
    # Perspective grows with the tilt: corners move up to degrees/200 of the side (0.04-0.125).
    corners += rng.uniform(-1, 1, (4, 2)) * degrees / 200 * np.array([width, height])
    return _warp(x, corners)


def _off_centre(x: torch.Tensor, keep: float, scale: float, rng: np.random.Generator) -> torch.Tensor:
    """Zoom in on a region pushed towards a random corner: the product is partly out of frame."""
    height, width = x.shape[-2:]
    w, h = width * keep, height * keep
    left = (width - w) * (0.5 + 0.5 * rng.choice([-1, 1]))
    top = (height - h) * (0.5 + 0.5 * rng.choice([-1, 1]))
    corners = np.array([[left, top], [left + w, top], [left + w, top + h], [left, top + h]])
    return _warp(x, corners)


_FLOAT_EFFECTS: dict[str, Callable[[torch.Tensor, float, float, np.random.Generator], torch.Tensor]] = {
    "dark": _exposure,
    "bright": _exposure,
    "low_contrast": _contrast,
    "colour_temperature": _temperature,
    "defocus_blur": _defocus,
    "motion_blur": _motion,
    "sensor_noise": _noise,
    "rotation_perspective": _rotation_perspective,
    "off_centre_crop": _off_centre,
}
