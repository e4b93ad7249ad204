from __future__ import annotations

import pytest
import torch

from ocula.errors import ModelError
from ocula.models import Preprocessing, preprocessing_for

HALF = (0.5, 0.5, 0.5)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_resize_and_description() -> None:
    pre = Preprocessing(224, HALF, HALF, "bicubic", 0.875)
    assert pre.resize_short_side == 256
    assert pre.description == (
        "resize shorter side to 256 (bicubic, antialias), centre crop 224, scale to [0,1], "
        "normalise mean=(0.5,0.5,0.5) std=(0.5,0.5,0.5)"
    )
    assert Preprocessing(32, HALF, HALF, "bilinear", 1.0).resize_short_side == 32


def test_normalize_values_and_layout() -> None:
    pre = Preprocessing(64, *IMAGENET)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    expected = (x.float() / 255 - torch.tensor(IMAGENET[0]).view(3, 1, 1)) / torch.tensor(IMAGENET[1]).view(3, 1, 1)
    out = pre.normalize(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    assert not x.is_floating_point()  # the input is left alone

    cl = x.contiguous(memory_format=torch.channels_last)
    out_cl = pre.normalize(cl)
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_cl, expected)

    half = Preprocessing(64, HALF, HALF)
    edges = half.normalize(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2).expand(3, 1, 2).contiguous())
    torch.testing.assert_close(edges[0, 0], torch.tensor([-1.0, 1.0]))


def test_normalize_rejects_non_uint8() -> None:
    with pytest.raises(TypeError):
        Preprocessing(64, HALF, HALF).normalize(torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": 8}, "too small"),
        ({"crop_pct": 0.0}, "crop_pct"),
        ({"crop_pct": 1.5}, "crop_pct"),
        ({"interpolation": "cubic"}, "interpolation 'cubic'"),
        ({"std": (0.5, 0.0, 0.5)}, "positive"),
    ],
)
def test_invalid_preprocessing(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"input_size": 64, "mean": HALF, "std": HALF, **kwargs}
    with pytest.raises(ModelError, match=message):
        Preprocessing(**args)  # type: ignore[arg-type]


def test_preprocessing_for() -> None:
    lite0 = preprocessing_for("tf_efficientnet_lite0", "default")
    assert lite0 == Preprocessing(224, HALF, HALF, "bicubic", 0.875)
    assert preprocessing_for("tf_efficientnet_lite0", "default", image_size=160).input_size == 160
    resnet = preprocessing_for("resnet18", "none")
    assert (resnet.mean, resnet.std) == IMAGENET and resnet.crop_pct == pytest.approx(0.95)
    assert preprocessing_for("small_cnn", "default") == Preprocessing(32, HALF, HALF, "bilinear", 1.0)
    assert preprocessing_for("small_cnn", "none", image_size=48).input_size == 48
