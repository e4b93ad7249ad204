"""The ``phone`` augmentation: make a clean training photo look like one a customer took.

Real phone photos of products differ from a catalogue shot by framing (off-centre, tilted,
seen at an angle), exposure, glare and white balance (auto-exposure under shop lighting), focus
and hand shake, sensor noise in dim light, digital zoom, and JPEG compression by apps and
messengers. The effects run in the order a camera applies them: optics and framing, then the
sensor, then the phone's processing, then compression; each has its own probability.

Magnitudes are wide (from barely visible to a bad photo), and the photometric effects are mixed
as AugMix does (Hendrycks et al., 2020): ``chains`` independent draws of the effects are blended
with Dirichlet weights, and the blend with the clean framed photo by a Beta weight. A model then
meets a continuum of degradations rather than a fixed menu, which is what lets it hold on
corruptions it never saw (measured in BENCHMARKS.md against ImageNet-C, which ocula did not write).

No horizontal flip: mirrored packaging text is not something a phone produces.

Everything runs in torch on one CHW image, drawing only from torch's global RNG, so
``torch.manual_seed`` reproduces it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2.functional import gaussian_blur

from ocula.errors import unknown


@dataclass(frozen=True)
class PhoneParams:
    """Probabilities and ranges of the ``phone`` policy (blur sizes are for a 224 crop and
    scale with ``image_size``)."""

    crop_scale: tuple[float, float] = (0.5, 1.0)  # fraction of the image area kept
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio of the kept region
    p_rotate: float = 0.3
    max_degrees: float = 8.0  # phone held slightly askew
    p_perspective: float = 0.3
    max_perspective: float = 0.08  # each corner moves up to this fraction of the crop side
    chains: int = 2  # independent draws of the photometric effects, blended (AugMix's width)
    mix_alpha: float = 1.0  # Dirichlet concentration of the blend; Beta(a, a) weight of the clean photo
    p_defocus: float = 0.3
    defocus_sigma: tuple[float, float] = (0.5, 3.0)  # Gaussian blur sigma, pixels
    p_motion: float = 0.2
    motion_length: tuple[float, float] = (3.0, 15.0)  # hand-shake streak length, pixels, any angle
    p_low_res: float = 0.2
    low_res_factor: tuple[float, float] = (1.5, 4.0)  # digital zoom or a messenger's downscale, then back up
    p_exposure: float = 0.8
    exposure_ev: tuple[float, float] = (-1.5, 1.0)  # stops; applied as a linear-light gain
    p_noise: float = 0.5
    shot_noise: tuple[float, float] = (0.0, 0.01)  # variance per unit signal (brighter = noisier)
    read_noise: tuple[float, float] = (0.002, 0.08)  # signal-independent std, drawn log-uniform
    p_white_balance: float = 0.6
    temperature: float = 0.12  # red gain 1+t, blue gain 1-t, t uniform in +-this
    tint: float = 0.04  # green gain 1+g, g uniform in +-this
    p_contrast: float = 0.5
    contrast: tuple[float, float] = (0.5, 1.3)  # around the mean grey
    p_glare: float = 0.2
    glare: tuple[float, float] = (0.1, 0.5)  # veiling glare: this fraction of a smooth bright haze
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (15, 90)

    def describe(self) -> str:
        return "; ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))

    def without(self, families: list[str]) -> PhoneParams:
        """These parameters with every effect of ``families`` (see ``FAMILIES``) switched off."""
        for family in families:
            if family not in FAMILIES:
                raise unknown("phone effect family", family, FAMILIES)
        return replace(self, **{name: 0.0 for family in families for name in FAMILIES[family]})


# The policy's effects by family, as the probabilities that switch them on: what
# ``--augment phone-without:FAMILY[,FAMILY]`` leaves out (to measure how the policy holds on an
# effect it never trained on, or to drop one the user's photos never show). The random crop
# that frames every photo is not a family: without it there is no policy.
FAMILIES: dict[str, tuple[str, ...]] = {
    "geometry": ("p_rotate", "p_perspective"),
    "blur": ("p_defocus", "p_motion", "p_low_res"),
    "exposure": ("p_exposure",),
    "noise": ("p_noise",),
    "white_balance": ("p_white_balance",),
    "contrast": ("p_contrast", "p_glare"),
    "jpeg": ("p_jpeg",),
}


def _chance(p: float) -> bool:
    return bool(torch.rand(()) < p)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


class PhonePhoto:
    """uint8 CHW (any size) -> uint8 CHW ``image_size`` x ``image_size``."""

    def __init__(self, image_size: int, params: PhoneParams | None = None) -> None:
        self.image_size = image_size
        self.params = params or PhoneParams()
        self.pixel_scale = image_size / 224
        self._grid = pixel_grid(image_size, image_size)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self._photo(self._frame(image.float() / 255))

    def views(self, image: torch.Tensor, n: int = 2) -> torch.Tensor:
        """uint8 (1 + n) x C x ``image_size`` x ``image_size``: one framing of ``image`` (crop, tilt,
        perspective), first as it is, then as ``n`` independent phone photos of it. AugMix's
        consistency loss asks the model to answer the same for all of them."""
        framed = self._frame(image.float() / 255)
        return torch.stack([_to_uint8(framed), *(self._photo(framed) for _ in range(n))])

    def _photo(self, framed: torch.Tensor) -> torch.Tensor:
        """The photometric effects, mixed as AugMix does, then the JPEG round trip."""
        p = self.params
        x = framed
        if p.chains > 0:
            weights = torch.distributions.Dirichlet(torch.full((p.chains,), p.mix_alpha)).sample()
            blend = sum(w * self._effects(framed) for w in weights)
            clean = float(torch.distributions.Beta(p.mix_alpha, p.mix_alpha).sample())
            x = clean * framed + (1 - clean) * blend
        out = _to_uint8(x)
        if _chance(p.p_jpeg):
            quality = int(torch.randint(p.jpeg_quality[0], p.jpeg_quality[1] + 1, ()))
            out = _recompress(out, quality)
        return out

    def _effects(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of the optics, sensor and processing effects on a float CHW image."""
        p = self.params
        if _chance(p.p_defocus):
            sigma = _uniform(*p.defocus_sigma) * self.pixel_scale
            kernel = 2 * math.ceil(2.5 * sigma) + 1
            x = gaussian_blur(x, [kernel, kernel], [sigma, sigma])
        if _chance(p.p_motion):
            x = _motion_blur(x, _uniform(*p.motion_length) * self.pixel_scale, _uniform(0.0, 180.0))
        if _chance(p.p_low_res):
            x = _low_resolution(x, _uniform(*p.low_res_factor))
        if _chance(p.p_exposure):
            # sRGB is roughly linear light ** (1 / 2.2), so a gain of 2**ev in linear light
            # is 2**(ev / 2.2) here; highlights then clip as they do on an over-exposed phone.
            x = x * 2 ** (_uniform(*p.exposure_ev) / 2.2)
        if _chance(p.p_noise):
            read = math.exp(_uniform(math.log(p.read_noise[0]), math.log(p.read_noise[1])))
            x = _sensor_noise(x, _uniform(*p.shot_noise), read)
        if _chance(p.p_white_balance):
            t, g = _uniform(-p.temperature, p.temperature), _uniform(-p.tint, p.tint)
            x = x * torch.tensor([1 + t, 1 + g, 1 - t]).view(3, 1, 1)
        if _chance(p.p_contrast):
            mean = x.mean()
            x = (x - mean) * _uniform(*p.contrast) + mean
        if _chance(p.p_glare):
            x = _glare(x, _uniform(*p.glare))
        return x.clamp(0, 1)

    def _frame(self, image: torch.Tensor) -> torch.Tensor:
        """Random resized crop, tilt and perspective as one warp (one resampling, and
        reflected borders instead of black corners)."""
        p = self.params
        height, width = image.shape[-2:]
        left, top, crop_w, crop_h = _crop_box(width, height, p.crop_scale, p.crop_ratio)
        # Shrink first when the crop is much larger than the output: bilinear sampling
        # alone would alias.
        shrink = min(crop_w, crop_h) / (1.25 * self.image_size)
        if shrink > 1:
            size = [max(1, round(height / shrink)), max(1, round(width / shrink))]
            image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
            sy, sx = size[0] / height, size[1] / width
            left, top, crop_w, crop_h = left * sx, top * sy, crop_w * sx, crop_h * sy
            height, width = size
        corners = np.array([[0, 0], [crop_w, 0], [crop_w, crop_h], [0, crop_h]], dtype=np.float64)
        centre = np.array([crop_w / 2, crop_h / 2])
        if _chance(p.p_rotate):
            angle = math.radians(_uniform(-p.max_degrees, p.max_degrees))
            rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            corners = (corners - centre) @ rotation.T + centre
        if _chance(p.p_perspective):
            jitter = (torch.rand(4, 2).numpy() * 2 - 1) * p.max_perspective
            corners = corners + jitter * np.array([crop_w, crop_h])
        corners = corners + np.array([left, top])
        return warp(image, corners, self._grid, self.image_size, self.image_size)


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """Homogeneous (x, y, 1) coordinates of the pixel centres of a height x width image, row-major."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32) + 0.5,
                            torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij")
    return torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(-1, 3)


def warp(image: torch.Tensor, corners: np.ndarray, grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float CHW ``image`` resampled into ``height`` x ``width`` whose outline maps onto ``corners``
    (source pixels, clockwise from top-left); ``grid`` is ``pixel_grid(height, width)``. Borders
    reflect instead of turning black."""
    source_h, source_w = image.shape[-2:]
    outline = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    points = grid @ torch.from_numpy(_homography(outline, corners).T).float()
    xy = points[:, :2] / points[:, 2:3]
    # grid_sample wants [-1, 1] across the source's outer pixel edges (align_corners=False).
    sample = torch.stack([xy[:, 0] / source_w * 2 - 1, xy[:, 1] / source_h * 2 - 1], dim=-1).view(1, height, width, 2)
    return F.grid_sample(image[None], sample, mode="bilinear", padding_mode="reflection", align_corners=False)[0]


def _crop_box(
    width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[float, float, float, float]:
    """(left, top, width, height) as torchvision's RandomResizedCrop samples it."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _uniform(*scale)
        aspect = math.exp(_uniform(*log_ratio))
        crop_w, crop_h = math.sqrt(target * aspect), math.sqrt(target / aspect)
        if crop_w <= width and crop_h <= height:
            return _uniform(0, width - crop_w), _uniform(0, height - crop_h), crop_w, crop_h
    side = min(width, height)  # fall back to a centre square
    return (width - side) / 2, (height - side) / 2, side, side


def _homography(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """3x3 matrix mapping the 4 ``source`` points onto the 4 ``target`` points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    h = np.linalg.solve(np.array(rows), np.array(rhs))
    return np.append(h, 1.0).reshape(3, 3)


def _motion_blur(image: torch.Tensor, length: float, degrees: float) -> torch.Tensor:
    """Convolve with a normalised line of ``length`` pixels at ``degrees``: a shaky hand."""
    size = max(3, int(math.ceil(length)) | 1)
    angle = math.radians(degrees)
    steps = torch.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * size)
    xs = (steps * math.cos(angle) + size // 2).round().long().clamp(0, size - 1)
    ys = (steps * math.sin(angle) + size // 2).round().long().clamp(0, size - 1)
    kernel = torch.zeros(size, size)
    kernel.index_put_((ys, xs), torch.ones_like(steps), accumulate=True)
    kernel = (kernel / kernel.sum()).expand(3, 1, size, size)
    padded = F.pad(image[None], [size // 2] * 4, mode="reflect")
    return F.conv2d(padded, kernel, groups=3)[0]


def _sensor_noise(image: torch.Tensor, shot: float, read: float) -> torch.Tensor:
    """Photon shot noise (variance grows with brightness) plus read noise, mostly shared
    across channels: phones suppress colour noise harder than luminance noise."""
    std = torch.sqrt(shot * image.clamp(min=0) + read**2)
    shared = torch.randn(1, *image.shape[1:])
    own = torch.randn_like(image)
    return image + std * (0.9 * shared + 0.44 * own)  # 0.9**2 + 0.44**2 ~ 1: unit variance


def _low_resolution(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Down to 1/``factor`` of the size (area average) and back up (bilinear): detail a digital
    zoom or a messenger's resize has thrown away."""
    height, width = image.shape[-2:]
    small = [max(1, round(height / factor)), max(1, round(width / factor))]
    down = F.interpolate(image[None], size=small, mode="area")
    return F.interpolate(down, size=[height, width], mode="bilinear", align_corners=False)[0]


def _glare(image: torch.Tensor, strength: float) -> torch.Tensor:
    """Veiling glare from a shop light or a smudged lens: a smooth bright haze over part of the
    frame, up to ``strength`` of the light at its brightest point, washing out contrast."""
    height, width = image.shape[-2:]
    ys = torch.linspace(0, 1, height).view(height, 1)
    xs = torch.linspace(0, 1, width).view(1, width)
    cy, cx, reach = float(torch.rand(())), float(torch.rand(())), _uniform(0.3, 1.2)
    veil = strength * torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * reach**2))
    return image * (1 - veil) + veil * 0.95


def _recompress(image: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip through Pillow (torchvision's codecs are deprecated since 0.29)."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1).contiguous()
