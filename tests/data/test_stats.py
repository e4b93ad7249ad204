"""Image statistics and the range of the training photos that the reject option checks against."""

from __future__ import annotations

import numpy as np

from ocula.data.stats import MIN_RANGE_IMAGES, image_stats, typical_ranges, unlike


def _photos(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth, textured, coloured images: what photos look like to these statistics."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y, x = np.mgrid[0:64, 0:64]
        base = 60 + 80 * np.sin(x / rng.uniform(4, 12)) * np.cos(y / rng.uniform(4, 12))
        image = np.stack([base + rng.uniform(-40, 40) for _ in range(3)], axis=2) + rng.normal(0, 4, (64, 64, 3))
        out.append(np.clip(image + 60, 0, 255).astype(np.uint8))
    return out


def test_blank_and_noise_are_unlike_every_photo_and_photos_are_not():
    ranges = typical_ranges([image_stats(photo) for photo in _photos(60)])
    assert set(ranges) == {"brightness", "contrast", "sharpness", "saturation"}
    assert all(unlike(image_stats(photo), ranges) is None for photo in _photos(20, seed=1))
    grey = unlike(image_stats(np.full((64, 64, 3), 128, np.uint8)), ranges)
    assert grey is not None and grey.startswith("lower in contrast than any training photo")
    noise = unlike(image_stats(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)), ranges)
    assert noise is not None and noise.startswith("sharper than any training photo")


def test_too_few_photos_give_no_ranges_and_no_rejection():
    assert typical_ranges([image_stats(photo) for photo in _photos(MIN_RANGE_IMAGES - 1)]) == {}
    assert unlike(image_stats(np.zeros((8, 8, 3), np.uint8)), {}) is None
