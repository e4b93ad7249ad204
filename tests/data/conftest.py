"""Builders for small generated datasets; every image is made here, in tmp_path."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXIF_ORIENTATION = 0x0112


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the audit's result cache out of the user's ~/.cache."""
    monkeypatch.setenv("OCULA_CACHE_DIR", str(tmp_path_factory.mktemp("ocula-cache")))


def pixels(seed: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A smooth random RGB picture (HWC uint8) of ``size`` = (width, height).

    Smooth, so that re-encoding or resizing keeps its perceptual hash; random per seed, so
    that different seeds never look alike."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((5, 5, 3)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize(size, Image.Resampling.BICUBIC))


def save_image(path: Path, seed: int = 0, size: tuple[int, int] = (64, 48), **save_args: object) -> Path:
    """Write a smooth random picture; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels(seed, size)).save(path, **save_args)
    return path


def jpeg_bytes(seed: int = 0, size: tuple[int, int] = (64, 48), quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels(seed, size)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def class_folders(root: Path, counts: dict[str, int], seed: int = 0, suffix: str = ".jpg") -> Path:
    """``root/<class>/<class>_<i><suffix>`` with distinct pictures."""
    for class_index, (name, count) in enumerate(sorted(counts.items())):
        for i in range(count):
            save_image(root / name / f"{name}_{i}{suffix}", seed=seed + 1000 * class_index + i)
    return root


def exif_rotated_jpeg(path: Path, size: tuple[int, int] = (80, 40), orientation: int = 6) -> Path:
    """A JPEG stored ``size`` = (w, h) with a red top-left corner, displayed rotated."""
    data = pixels(7, size).copy()
    data[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data).save(path, exif=exif.tobytes(), quality=95)
    return path


def sixteen_bit_png(path: Path) -> Path:
    """A grey 16-bit PNG: a horizontal ramp over the whole 0..65535 range."""
    ramp = np.tile(np.linspace(0, 65535, 64), (48, 1)).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ramp).save(path)
    return path


def bad_dataset(root: Path) -> Path:
    """train/ + val/ folders holding one of every kind of trouble.

    train/cat: 6 good, zero.jpg, truncated.jpg, text.png, cmyk.jpg, sixteen.png,
               rotated.jpg (80x40 stored, EXIF 6), tiny.jpg (10x10)
    train/dog: 6 good incl. shared.jpg; val/dog/shared_copy.jpg is a byte copy (leakage)
    val/cat, val/dog: 2 more good each
    """
    class_folders(root / "train", {"cat": 6, "dog": 5})
    cat = root / "train" / "cat"
    (cat / "zero.jpg").write_bytes(b"")
    whole = jpeg_bytes(seed=50, size=(120, 90))
    (cat / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (cat / "text.png").write_text("this is not a picture\n")
    Image.fromarray(pixels(51)).convert("CMYK").save(cat / "cmyk.jpg")
    sixteen_bit_png(cat / "sixteen.png")
    exif_rotated_jpeg(cat / "rotated.jpg")
    save_image(cat / "tiny.jpg", seed=52, size=(10, 10))
    save_image(root / "train" / "dog" / "shared.jpg", seed=53)
    class_folders(root / "val", {"cat": 2, "dog": 2}, seed=500)
    shutil.copy(root / "train" / "dog" / "shared.jpg", root / "val" / "dog" / "shared_copy.jpg")
    return root
