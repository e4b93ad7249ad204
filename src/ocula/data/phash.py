"""Perceptual hashes and a vectorised search for pairs of hashes that nearly match.

The hash is the classic 64-bit DCT pHash: shrink to 32x32 grey, take the 8x8
lowest-frequency DCT coefficients, and set a bit for each coefficient above their median.
Re-encoding, resizing and mild colour changes flip only a few bits; different photos
differ in about half of them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.fft import dctn

HASH_SIZE = 8
_SHRUNK = 32
# numpy >= 2.0 counts bits natively; older numpy falls back to a byte lookup table.
_POPCOUNT_TABLE = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def phash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash of ``image`` as an unsigned integer."""
    grey = image.convert("L").resize((_SHRUNK, _SHRUNK), Image.Resampling.LANCZOS, reducing_gap=2.0)
    coefficients = dctn(np.asarray(grey, dtype=np.float64), type=2, norm="ortho")
    low = coefficients[:HASH_SIZE, :HASH_SIZE]
    bits = (low > np.median(low)).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def popcount(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each element of a uint64 array."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    as_bytes = values.view(np.uint8).reshape(*values.shape, 8)
    return _POPCOUNT_TABLE[as_bytes].sum(axis=-1, dtype=np.uint8)


def hash_array(hashes: list[int]) -> np.ndarray:
    return np.array(hashes, dtype=np.uint64)


def near_pairs(
    left: np.ndarray, right: np.ndarray | None = None, max_distance: int = 4, block: int = 512
) -> list[tuple[int, int, int]]:
    """Pairs ``(i, j, distance)`` with Hamming distance <= ``max_distance``.

    With ``right`` None, pairs within ``left`` with ``i < j``; otherwise ``i`` indexes
    ``left`` and ``j`` indexes ``right``. Rows are compared in blocks so memory stays at
    ``block x len(right)`` bytes-ish while the work is numpy's, not Python's: 5,000 hashes
    take a fraction of a second.
    """
    within = right is None
    other = left if right is None else right
    pairs: list[tuple[int, int, int]] = []
    if len(left) == 0 or len(other) == 0:
        return pairs
    for start in range(0, len(left), block):
        rows = left[start : start + block]
        distances = popcount(rows[:, None] ^ other[None, :])
        close = distances <= max_distance
        if within:
            # keep j > i only: no self-matches, each pair once
            columns = np.arange(len(other))[None, :]
            close &= columns > (start + np.arange(len(rows)))[:, None]
        for i, j in zip(*np.nonzero(close), strict=True):
            pairs.append((start + int(i), int(j), int(distances[i, j])))
    return pairs
