"""The preprocessing a model expects, carried with the model (timm's convention).

Training, evaluation and serving all build their eval transform from one ``Preprocessing``
so that a served model sees exactly the pixels it was validated on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ocula.errors import ModelError

if TYPE_CHECKING:
    import torch

RGB = tuple[float, float, float]

IMAGENET_MEAN: RGB = (0.485, 0.456, 0.406)
IMAGENET_STD: RGB = (0.229, 0.224, 0.225)
# The TensorFlow-trained EfficientNet-Lite weights were trained on inputs scaled to [-1, 1].
HALF: RGB = (0.5, 0.5, 0.5)

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
MIN_IMAGE_SIZE = 16



@dataclass(frozen=True)
class Preprocessing:
    """Input size, normalisation and the eval resize/crop a model was trained with."""

    input_size: int
    mean: RGB
    std: RGB
    interpolation: str = "bicubic"
    crop_pct: float = 0.875

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, int) or self.input_size < MIN_IMAGE_SIZE:
            raise ModelError(
                f"image size {self.input_size!r} is too small",
                hint=f"use an integer of at least {MIN_IMAGE_SIZE}, e.g. 224",
            )
        if not 0.0 < self.crop_pct <= 1.0:
            raise ModelError(f"crop_pct {self.crop_pct!r} is out of range", hint="use a value in (0, 1], e.g. 0.875")
        if self.interpolation not in INTERPOLATIONS:
            raise ModelError(
                f"unknown interpolation {self.interpolation!r}", hint="use one of: " + ", ".join(INTERPOLATIONS)
            )
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3:
                raise ModelError(f"{name} {values!r} must have 3 values (R, G, B)")
        if min(self.std) <= 0:
            raise ModelError(f"std {self.std!r} must be positive")
        # Normalise lists (e.g. from JSON) to tuples so equality and hashing behave.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "crop_pct", float(self.crop_pct))

    @property
    def resize_short_side(self) -> int:
        """Shorter side after the eval resize, before the centre crop."""
        return round(self.input_size / self.crop_pct)

    @property
    def description(self) -> str:
        """The exact eval transform in words; stored in the model card."""
        resize = f"resize shorter side to {self.resize_short_side} ({self.interpolation}, antialias), "
        crop = f"centre crop {self.input_size}, "
        return (
            resize + crop + "scale to [0,1], "
            f"normalise mean={_fmt(self.mean)} std={_fmt(self.std)}"
        )

    def crop(self, array: np.ndarray, at: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
        """A decoded HWC uint8 array at ``resize_short_side`` -> the CHW uint8 input (a view).

        ``at`` places the crop (fraction of the spare rows, of the spare columns): the default is
        the centre crop with torchvision's anchor (``round((h - size) / 2)``), the same slice
        ``transforms.v2.CenterCrop`` takes; (0, 0) is the top-left corner.
        """
        size = self.input_size
        height, width = array.shape[:2]
        if height < size or width < size:
            raise ValueError(f"crop expects at least {size}x{size} pixels, got {width}x{height}")
        top, left = int(round((height - size) * at[0])), int(round((width - size) * at[1]))
        return array[top:top + size, left:left + size].transpose(2, 0, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (NCHW or CHW, 0..255) -> float32 normalised; keeps channels_last.

        One allocation (the float copy), then a fused in-place scale and shift: /255 and
        (x - mean) / std fold into x * a - b.
        """
        import torch

        if x.dtype != torch.uint8:
            raise TypeError(f"normalize expects a uint8 tensor, got {x.dtype}")
        if x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(f"normalize expects (N, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(3, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
        scale = 1.0 / (255.0 * std)
        shift = mean / std
        # .to() preserves the memory format (channels_last stays channels_last).
        out = x.to(torch.float32)
        return out.mul_(scale).sub_(shift)

    def to_dict(self) -> dict[str, object]:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }


# Native input of the local (non-timm) architectures in registry.py. small_cnn is for tiny
# images (traffic-sign-like 32x32): no crop, since a crop would cut into the object.
LOCAL_PREPROCESSING: dict[str, Preprocessing] = {
    "small_cnn": Preprocessing(32, HALF, HALF, "bilinear", 1.0),
}

# Normalisation the offline (packaged) weights were trained with; registry.py's
# OFFLINE_WEIGHTS points here so the two cannot drift apart.
OFFLINE_MEAN_STD: dict[str, tuple[RGB, RGB]] = {"tf_efficientnet_lite0": (HALF, HALF)}


def _fmt(values: RGB) -> str:
    return "(" + ",".join(f"{v:g}" for v in values) + ")"
