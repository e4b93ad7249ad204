"""The augmentation registry: pick a policy by name, get a function on one image.

Policies take a uint8 CHW tensor as stored in the decode cache (shorter side
``cached_short_side(image_size)``, though any size works) and return a uint8 CHW tensor of
exactly ``image_size`` x ``image_size``. Normalisation is the model's business, not theirs.
All randomness comes from torch's global RNG, so ``torch.manual_seed`` reproduces a run
(DataLoader workers seed it per worker).

SageMaker's colour magnitudes are MXNet's: additive shifts in OpenCV's 8-bit HLS, hue in
0..180 and lightness/saturation in 0..255. Hue +-36 of 180 is +-72 degrees, torchvision
``hue=0.2`` (a fraction of the full circle). Lightness and saturation +-50 of 255 are
additive there, multiplicative in torchvision; at mid-range values (~128) +-50 is a factor
of 1 +- 0.39, so ``brightness=0.39, saturation=0.39``. MXNet's shear ratio 0.1 is the affine
matrix's off-diagonal term, atan(0.1) = 5.7 degrees in torchvision's units, and its aspect
ratio change 0.25 stretches width against height by a factor in [0.75, 1.25].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchvision.transforms import v2

from ocula.data.phone import FAMILIES, PhoneParams, PhonePhoto
from ocula.errors import UsageError, unknown

Transform = Callable[[torch.Tensor], torch.Tensor]

EVAL_CROP_FRACTION = 0.875  # the 224-from-256 centre crop ImageNet models are evaluated with
SAGEMAKER_HUE = 0.2
SAGEMAKER_LIGHTNESS = 0.39
SAGEMAKER_SATURATION = 0.39
SAGEMAKER_DEGREES = 10.0
SAGEMAKER_SHEAR_DEGREES = math.degrees(math.atan(0.1))
SAGEMAKER_ASPECT = 0.25
MXNET_FILL = 127  # MXNet's fill_value for pixels a rotation uncovers

PHONE_WITHOUT = "phone-without:"  # + FAMILY[,FAMILY]: the phone policy without those effects
POLICIES: dict[str, str] = {
    "none": "No augmentation: the eval transform (shorter side to image_size/0.875, centre crop).",
    "crop": "SageMaker 'crop': random image_size crop of the cached image (shorter side "
    "image_size/0.875) and a horizontal flip with p=0.5.",
    "crop_color": "SageMaker 'crop_color': 'crop' plus colour jitter with SageMaker's default "
    f"magnitudes (hue +-36 of 180, saturation and lightness +-50 of 255) mapped to torchvision "
    f"hue={SAGEMAKER_HUE}, saturation={SAGEMAKER_SATURATION}, brightness={SAGEMAKER_LIGHTNESS}.",
    "crop_color_transform": "SageMaker 'crop_color_transform': 'crop_color' plus an aspect-ratio "
    f"stretch of up to {SAGEMAKER_ASPECT:g}, rotation up to {SAGEMAKER_DEGREES:g} degrees and "
    f"shear ratio up to 0.1 ({SAGEMAKER_SHEAR_DEGREES:.1f} degrees), uncovered pixels grey ({MXNET_FILL}).",
    "randaugment": "'crop' then RandAugment (2 ops, magnitude 9 of 31; Cubuk et al. 2020).",
    "trivialaugment": "'crop' then TrivialAugmentWide (one op at a random magnitude; Mueller & Hutter 2021).",
    "phone": "Realistic customer phone photos, each effect with its own probability: "
    + PhoneParams().describe()
    + ". Crop, tilt and perspective are one warp with reflected borders; no horizontal flip. "
    "Backbone training adds AugMix's consistency loss (--consistency, default 12 with this policy). "
    f"'{PHONE_WITHOUT}FAMILY[,FAMILY]' leaves effect families out: {', '.join(FAMILIES)}.",
}
MIX_KINDS = ("mixup", "cutmix")


def cached_short_side(image_size: int) -> int:
    """Shorter side the decode cache stores for a model input of ``image_size``."""
    return round(image_size / EVAL_CROP_FRACTION)


def eval_transform(image_size: int) -> Transform:
    """Shorter side to ``cached_short_side`` (a no-op on cached images), then a centre crop:
    validation, test and serving all use this."""
    _check_size(image_size)
    return v2.Compose([_short_side(image_size), v2.CenterCrop(image_size)])


def consistency_views(policy: Transform) -> Transform:
    """``policy`` as groups of views for AugMix's consistency loss (see ``PhonePhoto.views``):
    uint8 CHW -> 3 x C x H x W, the framed photo and two phone photos of it."""
    if not isinstance(policy, PhonePhoto):
        raise UsageError("the consistency loss needs the phone policy",
                         hint="use --augment phone (or phone-without:FAMILY), or --consistency 0")
    return policy.views


def get_policy(name: str, image_size: int) -> Transform:
    """The augmentation called ``name`` (see ``POLICIES``) for ``image_size`` inputs;
    ``phone-without:FAMILY[,FAMILY]`` is the phone policy without those effect families."""
    if name.startswith(PHONE_WITHOUT):
        families = [f.strip() for f in name[len(PHONE_WITHOUT):].split(",") if f.strip()]
        if not families:
            raise UsageError(f"{name!r} names no effect family to leave out",
                             hint=f"e.g. {PHONE_WITHOUT}jpeg; families: {', '.join(FAMILIES)}")
        _check_size(image_size)
        return PhonePhoto(image_size, PhoneParams().without(families))
    if name not in POLICIES:
        raise unknown("augmentation policy", name, [*POLICIES, PHONE_WITHOUT + "FAMILY"])
    _check_size(image_size)
    if name == "none":
        return eval_transform(image_size)
    if name == "phone":
        return PhonePhoto(image_size)
    steps: list[Transform] = [_short_side(image_size)]
    if name == "crop_color_transform":
        steps += [
            RandomStretch(SAGEMAKER_ASPECT),
            v2.RandomAffine(
                degrees=SAGEMAKER_DEGREES,
                shear=(-SAGEMAKER_SHEAR_DEGREES, SAGEMAKER_SHEAR_DEGREES),
                interpolation=v2.InterpolationMode.BILINEAR,
                fill=MXNET_FILL,
            ),
        ]
    steps += [v2.RandomCrop(image_size, pad_if_needed=True), v2.RandomHorizontalFlip()]
    if name in ("crop_color", "crop_color_transform"):
        steps.append(v2.ColorJitter(brightness=SAGEMAKER_LIGHTNESS, saturation=SAGEMAKER_SATURATION, hue=SAGEMAKER_HUE))
    elif name == "randaugment":
        steps.append(v2.RandAugment(num_ops=2, magnitude=9))
    elif name == "trivialaugment":
        steps.append(v2.TrivialAugmentWide())
    return v2.Compose(steps)


class RandomStretch(torch.nn.Module):
    """Stretch width against height by a random factor in [1 - max_change, 1 + max_change],
    keeping the area (so the crop that follows still fits)."""

    def __init__(self, max_change: float) -> None:
        super().__init__()
        self.max_change = max_change

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        ratio = 1 + (float(torch.rand(())) * 2 - 1) * self.max_change
        height, width = image.shape[-2:]
        size = [max(1, round(height / math.sqrt(ratio))), max(1, round(width * math.sqrt(ratio)))]
        return v2.functional.resize(image, size, antialias=True)


def random_erasing(batch: torch.Tensor, p: float = 0.25, scale: tuple[float, float] = (0.02, 0.33)) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020) on a *normalised float* NCHW batch, after
    normalisation, each image independently with probability ``p``; the erased box gets
    standard-normal noise, which matches normalised pixel statistics."""
    if not batch.is_floating_point() or batch.dim() != 4:
        raise UsageError(
            f"random_erasing expects a normalised float NCHW batch, got {batch.dtype} with shape {tuple(batch.shape)}",
            hint="apply it after converting to float and normalising",
        )
    if not 0 <= p <= 1:
        raise UsageError(f"random erasing probability must be in [0, 1], got {p}")
    eraser = v2.RandomErasing(p=p, scale=scale, value="random")  # type: ignore[arg-type]
    return torch.stack([eraser(image) for image in batch])


def mix_batch(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, kind: str = "mixup", alpha: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp or CutMix on a float NCHW batch with integer labels; returns the mixed images
    and soft targets (N x num_classes, rows sum to 1) for a soft-target cross-entropy."""
    if kind not in MIX_KINDS:
        raise unknown("batch mixing kind", kind, MIX_KINDS)
    if alpha <= 0:
        raise UsageError(f"{kind} alpha must be > 0, got {alpha}", hint="typical values are 0.2 (mixup) and 1.0 (cutmix)")
    if not x.is_floating_point():
        raise UsageError(f"{kind} expects a float batch, got {x.dtype}", hint="convert and normalise before mixing")
    if y.dim() == 2:  # multi-label targets (N x K of 0/1): mix them with the same weight as the images
        return _mix_multi_label(x, y.float(), kind, alpha)
    mixer = v2.MixUp(alpha=alpha, num_classes=num_classes) if kind == "mixup" else v2.CutMix(alpha=alpha, num_classes=num_classes)
    mixed, targets = mixer(x, y.long())
    return mixed, targets


def _mix_multi_label(x: torch.Tensor, y: torch.Tensor, kind: str, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp/CutMix with the batch rolled by one, as torchvision does; targets mixed by the image share kept."""
    share = float(torch.distributions.Beta(alpha, alpha).sample())
    other_x, other_y = x.roll(1, 0), y.roll(1, 0)
    if kind == "mixup":
        return share * x + (1 - share) * other_x, share * y + (1 - share) * other_y
    height, width = x.shape[-2:]
    cut_h, cut_w = int(height * math.sqrt(1 - share)), int(width * math.sqrt(1 - share))
    top, left = int(torch.randint(height - cut_h + 1, ())), int(torch.randint(width - cut_w + 1, ()))
    mixed = x.clone()
    mixed[..., top:top + cut_h, left:left + cut_w] = other_x[..., top:top + cut_h, left:left + cut_w]
    kept = 1 - cut_h * cut_w / (height * width)
    return mixed, kept * y + (1 - kept) * other_y


def _short_side(image_size: int) -> Transform:
    # torchvision returns the input untouched when the size already matches.
    return v2.Resize(cached_short_side(image_size), antialias=True)


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, int) or image_size < 16:
        raise UsageError(f"image_size must be an integer >= 16, got {image_size!r}", hint="224 is the usual choice")
