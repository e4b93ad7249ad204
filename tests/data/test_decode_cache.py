from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocula.data import DecodeCache, default_cache_dir, resize_short_side
from ocula.errors import UsageError

from .conftest import exif_rotated_jpeg, save_image


def item(path: Path) -> tuple[str, str]:
    return str(path), hashlib.sha1(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((120, 90), (32, 43)),  # landscape: (h, w) with h = short side
        ((90, 120), (43, 32)),  # portrait
        ((10, 12), (38, 32)),  # smaller than short_side: upscaled
        ((400, 50), (32, 64)),  # panorama: long side centre-cropped to 2 x short side
    ],
)
def test_resized_shape(tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]) -> None:
    path = save_image(tmp_path / "x.jpg", size=size)
    cache = DecodeCache(tmp_path / "cache", 32)
    cache.ensure([item(path)])
    array = cache.load(item(path)[1])
    assert array.shape == (*expected, 3) and array.dtype == np.uint8
    assert isinstance(array, np.memmap)


def test_layout_reuse_and_short_sides(tmp_path: Path) -> None:
    items = [item(save_image(tmp_path / f"{i}.png", seed=i, size=(80, 60))) for i in range(3)]
    (tmp_path / "copy.png").write_bytes((tmp_path / "0.png").read_bytes())
    items.append(item(tmp_path / "copy.png"))  # same content, other name: decoded once
    cache = DecodeCache(tmp_path / "cache", 32)
    progress: list[tuple[int, int]] = []

    cache.ensure(items, progress=lambda done, total: progress.append((done, total)))

    digest = items[0][1]
    entry = tmp_path / "cache" / "32" / digest[:2] / f"{digest}.npy"
    assert cache.path_for(digest) == entry and entry.exists()
    assert cache.decoded == 3 and progress[-1] == (3, 3)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")}

    again = DecodeCache(tmp_path / "cache", 32)
    again.ensure(items)
    assert again.decoded == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")} == stamps

    bigger = DecodeCache(tmp_path / "cache", 48)
    bigger.ensure(items)
    assert bigger.decoded == 3
    assert bigger.path_for(digest) != entry and bigger.load(digest).shape == (48, 64, 3)
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    assert cache.disk_bytes() == sum(p.stat().st_size for p in stamps)


def test_bad_and_changed_files_are_recorded_not_raised(tmp_path: Path) -> None:
    good = item(save_image(tmp_path / "good.jpg"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    changed = save_image(tmp_path / "changed.jpg", seed=1)
    changed_item = item(changed)
    save_image(changed, seed=2)
    cache = DecodeCache(tmp_path / "cache", 32)

    cache.ensure([good, item(broken), changed_item])

    assert cache.failed == {str(broken): "not_image", str(changed): "changed"}
    assert good[1] in cache and changed_item[1] not in cache
    with pytest.raises(KeyError, match="call ensure"):
        cache.load(changed_item[1])


def test_exif_orientation_survives_the_cache(tmp_path: Path) -> None:
    path = exif_rotated_jpeg(tmp_path / "r.jpg", size=(80, 40))
    cache = DecodeCache(tmp_path / "cache", 32)
    cache.ensure([item(path)])
    assert cache.load(item(path)[1]).shape == (64, 32, 3)  # portrait after rotation


def test_resize_short_side_keeps_content_centred() -> None:
    array = np.zeros((100, 300, 3), dtype=np.uint8)
    array[:, 140:160] = 255  # a white bar in the middle
    out = resize_short_side(Image.fromarray(array), 50)
    assert out.shape == (50, 100, 3)
    assert out[25, 50, 0] > 200 and out[25, 5, 0] < 20


def test_default_cache_dir_and_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCULA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("OCULA_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "ocula"
    with pytest.raises(UsageError, match="short_side must be an integer >= 8"):
        DecodeCache(tmp_path, 4)
