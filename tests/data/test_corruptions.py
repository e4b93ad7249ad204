"""The phone-photo corruptions: same shape out, the effect they name, reproducible under a seed."""

from __future__ import annotations

import numpy as np
import pytest

from ocula.data.corruptions import MILD, SEVERITIES, corrupt, corruption_names, describe, mild_copies
from ocula.errors import UsageError


@pytest.fixture(scope="module")
def photo():
    """A 256x320 'product shot': a textured label on a mid-grey shelf."""
    rng = np.random.default_rng(0)
    image = np.full((256, 320, 3), 120, np.uint8)
    image[64:192, 96:224] = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    return image


def _sharpness(image: np.ndarray) -> float:
    grey = image.astype(float).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


@pytest.mark.parametrize("name", corruption_names())
def test_every_corruption_keeps_the_shape_changes_the_pixels_and_repeats(photo, name):
    outs = [corrupt(photo, name, s, seed=7) for s in SEVERITIES]
    for out in outs:
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - photo).mean() > 1.0
    assert np.array_equal(corrupt(photo, name, 2, seed=7), outs[1])
    if name != "off_centre_crop":  # a closer crop of a corner need not differ more pixel by pixel
        distance = [np.abs(o.astype(int) - photo).mean() for o in outs]
        assert distance[0] < distance[1] < distance[2]


def test_effects_do_what_their_names_say(photo):
    assert corrupt(photo, "dark", 3, 0).mean() < photo.mean() * 0.6
    assert corrupt(photo, "bright", 1, 0).mean() > photo.mean()
    assert corrupt(photo, "low_contrast", 3, 0).std() < photo.std() * 0.5
    for blur in ("defocus_blur", "motion_blur"):
        assert _sharpness(corrupt(photo, blur, 3, 0)) < 0.6 * _sharpness(photo)
    warm_or_cold = corrupt(photo, "colour_temperature", 3, 0).astype(float)
    assert abs(warm_or_cold[..., 0].mean() - warm_or_cold[..., 2].mean()) > 20


def test_different_seeds_draw_different_noise(photo):
    assert not np.array_equal(corrupt(photo, "sensor_noise", 2, 1), corrupt(photo, "sensor_noise", 2, 2))


def test_unknown_corruption_suggests_a_name(photo):
    with pytest.raises(UsageError, match="did you mean 'motion_blur'"):
        corrupt(photo, "motion_blr", 1, 0)
    assert {row["corruption"] for row in describe()} == set(corruption_names())


def test_mild_copies_go_round_every_mild_pair_and_repeat(photo):
    assert len(MILD) == 2 * len(corruption_names()) and {s for _, s in MILD} == {1, 2}
    seen = set()
    for position in range(len(MILD)):
        copies = mild_copies(photo, position, 3)
        assert len(copies) == 3 and all(c.shape == photo.shape and c.dtype == np.uint8 for c in copies)
        seen.update(MILD[(position * 3 + j) % len(MILD)] for j in range(3))
    assert seen == set(MILD)  # a set of images covers every pair
    again = mild_copies(photo, 5, 3)
    assert all(np.array_equal(a, b) for a, b in zip(again, mild_copies(photo, 5, 3)))
    assert mild_copies(photo, 5, 3)[0].tobytes() != photo.tobytes()
