"""Decode each image once: a content-addressed cache of resized uint8 arrays.

Layout: ``<root>/<short_side>/<digest[:2]>/<digest>.npy``, one HWC uint8 array per image,
whose shorter side is exactly ``short_side`` and longer side at most ``2 * short_side``
(centre-cropped beyond that). ``digest`` is the sha1 of the file's bytes, so renamed or
copied photos share an entry, and different datasets share a cache root safely.

Training reads these arrays memory-mapped: an epoch costs a page-cache read and the
augmentation, never a JPEG decode.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from PIL import Image

from ocula.data.imageio import decode_full, read_bytes
from ocula.errors import ImageError, UsageError

# Bicubic is the interpolation timm's pretrained models were evaluated with; Pillow's
# implementation widens its kernel when shrinking, so it antialiases.
RESAMPLE = Image.Resampling.BICUBIC
MAX_ASPECT = 2


def default_cache_dir() -> Path:
    """``$OCULA_CACHE_DIR`` if set, else ``~/.cache/ocula``."""
    configured = os.environ.get("OCULA_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "ocula"


def resize_short_side(image: Image.Image, short_side: int) -> np.ndarray:
    """RGB image -> HWC uint8 array with shorter side ``short_side`` (up- or downscaled)
    and longer side centre-cropped to at most ``MAX_ASPECT * short_side``."""
    width, height = image.size
    scale = short_side / min(width, height)
    # Crop in source pixels before resizing: less work than resizing the full panorama.
    keep_w = min(width, MAX_ASPECT * short_side / scale)
    keep_h = min(height, MAX_ASPECT * short_side / scale)
    left, top = (width - keep_w) / 2, (height - keep_h) / 2
    size = (
        min(MAX_ASPECT * short_side, max(short_side, round(keep_w * scale))),
        min(MAX_ASPECT * short_side, max(short_side, round(keep_h * scale))),
    )
    box = (left, top, left + keep_w, top + keep_h)
    if size != image.size or box != (0, 0, width, height):
        image = image.resize(size, RESAMPLE, box=box)
    return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy, C-ordered


def decode_resized(data: bytes, path: str, short_side: int) -> np.ndarray:
    """Bytes -> the cached array. Serving should call this too, so that predictions see
    exactly the pixels training saw."""
    # A (short_side, short_side) draft keeps the JPEG's shorter side >= short_side.
    decoded = decode_full(data, path, draft=(short_side, short_side))
    return resize_short_side(decoded.image, short_side)


class DecodeCache:
    """Decoded, resized images on disk, keyed by content digest; see the module docstring."""

    def __init__(self, root: str | os.PathLike[str], short_side: int) -> None:
        if not isinstance(short_side, int) or short_side < 8:
            raise UsageError(f"decode cache short_side must be an integer >= 8, got {short_side!r}")
        self.root = Path(root)
        self.short_side = short_side
        self.directory = self.root / str(short_side)
        self.decoded = 0  # how many images ensure() decoded through this object
        self.failed: dict[str, str] = {}  # path -> reason, for files ensure() could not use

    def path_for(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.npy"

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and self.path_for(digest).exists()

    def ensure(
        self,
        items: list[tuple[str, str]],
        workers: int = 2,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Decode and store every ``(path, digest)`` not cached yet.

        A file that fails to decode, or whose bytes no longer match its digest, is recorded
        in ``failed`` and skipped; the others are still cached.
        """
        todo: dict[str, str] = {}
        for path, digest in items:
            if digest not in self:
                todo.setdefault(digest, path)
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(self._store, path, digest): path for digest, path in todo.items()}
            for done, future in enumerate(as_completed(futures), start=1):
                try:
                    future.result()
                    self.decoded += 1
                except ImageError as error:
                    self.failed[futures[future]] = error.reason
                if progress is not None:
                    progress(done, len(todo))

    def load(self, digest: str) -> np.ndarray:
        """The cached HWC uint8 array, memory-mapped read-only."""
        try:
            return np.load(self.path_for(digest), mmap_mode="r")
        except FileNotFoundError:
            raise KeyError(f"{digest} is not in the decode cache at {self.directory}; call ensure() first") from None

    def disk_bytes(self) -> int:
        """Bytes used by this short side's entries."""
        return sum(entry.stat().st_size for entry in self.directory.rglob("*.npy")) if self.directory.exists() else 0

    def _store(self, path: str, digest: str) -> None:
        data = read_bytes(path)
        if hashlib.sha1(data, usedforsecurity=False).hexdigest() != digest:
            # Storing new bytes under the old digest would poison a content-addressed cache.
            raise ImageError(path, "changed", "the file's content changed since it was audited")
        array = decode_resized(data, path, self.short_side)
        target = self.path_for(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash or a concurrent writer never leaves half a file.
        handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, array)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
