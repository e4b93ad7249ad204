from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocula.data import decode, read_bytes, read_image
from ocula.data.imageio import decode_full
from ocula.errors import ImageError

from .conftest import exif_rotated_jpeg, jpeg_bytes, pixels, sixteen_bit_png


def encoded(image: Image.Image, fmt: str, **save_args: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def reason_of(data: bytes) -> str:
    with pytest.raises(ImageError) as caught:
        decode(data, "x")
    return caught.value.reason


def test_plain_rgb_jpeg_has_no_notes() -> None:
    image, notes = decode(jpeg_bytes(), "x.jpg")
    assert image.mode == "RGB" and image.size == (64, 48) and notes == []


@pytest.mark.parametrize(
    ("make", "note"),
    [
        (lambda: encoded(Image.fromarray(pixels(1)).convert("CMYK"), "JPEG"), "cmyk_converted"),
        (lambda: encoded(Image.fromarray(pixels(1)).convert("L"), "PNG"), "grayscale_converted"),
        (lambda: encoded(Image.fromarray(pixels(1)).convert("LA"), "PNG"), "grayscale_converted"),
        (lambda: encoded(Image.fromarray(pixels(1)).convert("P"), "PNG", transparency=0), "palette_transparency"),
    ],
)
def test_modes_are_converted_to_rgb_with_a_note(make: object, note: str) -> None:
    image, notes = decode(make(), "x")  # type: ignore[operator]
    assert image.mode == "RGB"
    assert note in notes


def test_rgba_is_flattened_onto_white() -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, but fully transparent on the left half
    rgba[:, 4:, 3] = 255
    image, notes = decode(encoded(Image.fromarray(rgba), "PNG"), "x.png")
    values = np.asarray(image)
    assert "alpha_flattened" in notes
    assert tuple(values[0, 0]) == (255, 255, 255) and tuple(values[0, 7]) == (255, 0, 0)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = sixteen_bit_png(tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    image, notes = decode(read_bytes(str(path)), str(path))
    row = np.asarray(image)[0, :, 0].astype(int)
    assert "16bit_converted" in notes
    assert row[0] == 0 and row[-1] == 255
    assert 120 <= row[32] <= 135  # mid-ramp stays mid-grey; clipping would give 255
    assert np.all(np.diff(row) >= 0)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = exif_rotated_jpeg(tmp_path / "r.jpg", size=(80, 40), orientation=6)
    image, notes = decode(read_bytes(str(path)), str(path))
    assert "exif_rotated" in notes
    assert image.size == (40, 80)  # width and height swapped
    # Orientation 6 means "rotate 90 degrees clockwise to view": stored top-left -> top-right.
    red, green, blue = (int(v) for v in np.asarray(image)[3, 36])
    assert red > 200 and green < 60 and blue < 60
    assert decode_full(read_bytes(str(path)), str(path), draft=(8, 8)).size == (40, 80)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "zero_byte"),
        (b"hello, I am text pretending to be a PNG\n", "not_image"),
        (jpeg_bytes(size=(120, 90))[:900], "truncated"),
    ],
)
def test_broken_files_raise_image_error_with_reason(data: bytes, reason: str) -> None:
    assert reason_of(data) == reason


def test_decompression_bomb_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert reason_of(jpeg_bytes()) == "too_large"


def test_read_image_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes())
    assert read_image(tmp_path / "a.jpg").size == (64, 48)
    with pytest.raises(ImageError) as caught:
        read_image(tmp_path / "gone.jpg")
    assert caught.value.reason == "unreadable" and "no such file" in str(caught.value)


def test_draft_decodes_jpeg_smaller_but_reports_full_size() -> None:
    decoded = decode_full(jpeg_bytes(size=(640, 480)), "x.jpg", draft=(64, 64))
    assert decoded.size == (640, 480)
    assert decoded.image.size == (160, 120)  # 1/4: the largest libjpeg scale keeping both sides >= 64
