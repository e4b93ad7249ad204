"""Read and decode one image into RGB, or say precisely why it cannot be used.

Every failure becomes ``ImageError(path, reason)`` with one of the reason codes below,
so that callers can skip the file and report it instead of crashing a whole pass.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import fsspec
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ocula.errors import ImageError

REASONS = {
    "zero_byte": "the file is empty",
    "not_image": "not an image file Pillow can identify",
    "truncated": "the image data ends early",
    "unreadable": "the file cannot be read or decoded",
    "too_large": "more pixels than Image.MAX_IMAGE_PIXELS allows (decompression bomb guard)",
    "too_small": "shorter side below the audit's min_side",
}
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La"})
_EXIF_ORIENTATION = 0x0112


@dataclass
class Decoded:
    """A decoded RGB image plus what it took to get there.

    ``size`` is the full-resolution (width, height) after EXIF rotation, even when a JPEG
    draft decoded a smaller ``image``.
    """

    image: Image.Image
    notes: list[str]
    size: tuple[int, int]


def read_bytes(path: str) -> bytes:
    """The file's bytes; local paths skip fsspec (faster in tight loops)."""
    try:
        if "://" not in path:
            with open(path, "rb") as handle:
                return handle.read()
        with fsspec.open(path, "rb") as handle:
            data: bytes = handle.read()
            return data
    except FileNotFoundError as error:
        raise ImageError(path, "unreadable", "no such file") from error
    except (OSError, ValueError) as error:
        raise ImageError(path, "unreadable", str(error)) from error


def decode(data: bytes, path: str) -> tuple[Image.Image, list[str]]:
    """Decode to an RGB image with EXIF orientation applied, plus conversion notes such as
    ``cmyk_converted``, ``16bit_converted``, ``palette_transparency``,
    ``grayscale_converted``, ``exif_rotated``."""
    decoded = decode_full(data, path)
    return decoded.image, decoded.notes


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """Read and decode in one call; raises ``ImageError`` for an unusable file."""
    shown = os.fspath(path)
    return decode(read_bytes(shown), shown)[0]


def decode_full(data: bytes, path: str, draft: tuple[int, int] | None = None) -> Decoded:
    """``decode`` with the original size, optionally decoding JPEGs at reduced size.

    ``draft`` asks libjpeg to scale by 1/2, 1/4 or 1/8 while decoding, as long as the
    result stays at least that (width, height). It still reads the whole stream, so
    truncation is still caught, but decodes several times faster.
    """
    if not data:
        raise ImageError(path, "zero_byte", "0 bytes")
    try:
        # Pillow raises above 2 x MAX_IMAGE_PIXELS (and only warns between 1x and 2x, which
        # lets 100-megapixel phone photos through; draft decoding keeps those cheap).
        image = Image.open(io.BytesIO(data))
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        full_size = image.size
        if draft is not None and image.format == "JPEG":
            image.draft(None, draft)
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageError(path, "too_large", str(error)) from error
    except UnidentifiedImageError as error:
        raise ImageError(path, "not_image", f"{len(data)} bytes, no known image format") from error
    except Exception as error:  # noqa: BLE001 - any decoder failure means this one file is unusable
        reason = "truncated" if "truncated" in str(error).lower() else "unreadable"
        raise ImageError(path, reason, f"{type(error).__name__}: {error}") from error
    try:
        notes: list[str] = []
        if orientation not in (1, None):
            image = ImageOps.exif_transpose(image)
            notes.append("exif_rotated")
            if orientation in (5, 6, 7, 8):
                full_size = (full_size[1], full_size[0])
        rgb = _to_rgb(image, notes)
    except Exception as error:  # noqa: BLE001 - e.g. a mode Pillow cannot convert
        raise ImageError(path, "unreadable", f"{type(error).__name__}: {error}") from error
    return Decoded(rgb, notes, full_size)


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES:
        notes.append("16bit_converted")
        return Image.fromarray(_sixteen_to_eight(np.asarray(image))).convert("RGB")
    if mode == "F":
        notes.append("float_converted")
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).round().astype(np.uint8)).convert("RGB")
    if mode == "CMYK":
        notes.append("cmyk_converted")
        return image.convert("RGB")
    if mode == "P":
        if "transparency" in image.info:
            notes.append("palette_transparency")
            return _flatten(image.convert("RGBA"))
        return image.convert("RGB")
    if mode in _GRAY_MODES:
        notes.append("grayscale_converted")
        return _flatten(image.convert("LA")) if mode in ("LA", "La") else image.convert("RGB")
    if mode in ("RGBA", "RGBa", "PA"):
        return _flatten(image.convert("RGBA"), notes)
    notes.append(f"{mode.lower()}_converted")
    return image.convert("RGB")


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """Scale 0..65535 to 0..255 (rounding), rather than clipping everything above 255.

    Mode "I" is 32-bit; Pillow uses it for 16-bit PNGs too, so only values above 255 prove
    a 16-bit range. Otherwise the data already is 8-bit and is kept as is."""
    wide = values.astype(np.int64)
    if wide.max(initial=0) > 255 or values.dtype.itemsize == 2:
        wide = (np.clip(wide, 0, 65535) * 255 + 32767) // 65535
    return np.clip(wide, 0, 255).astype(np.uint8)


def _flatten(image: Image.Image, notes: list[str] | None = None) -> Image.Image:
    """Composite transparent pixels onto white: transparent areas hold arbitrary colours
    that would otherwise leak into training as noise."""
    alpha = image.getchannel("A")
    if notes is not None and alpha.getextrema()[0] < 255:
        notes.append("alpha_flattened")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image.convert("RGB"), mask=alpha)
    return background
