"""Carve a validation split out of a training set, class by class."""

from __future__ import annotations

import zlib
from collections import defaultdict

import numpy as np

from ocula.data.dataset import Sample
from ocula.errors import UsageError


def stratified_split(samples: list[Sample], fraction: float = 0.2, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Split into (train, val) with about ``fraction`` of every class in val.

    Every class with at least 2 images gets at least 1 val image and keeps at least 1
    train image; single-image classes stay in train. The result depends only on the set of
    samples and the seed, not on their order, and both lists keep the input order.

    Why not sklearn's ``train_test_split(stratify=...)``: it rejects a val set smaller than
    the number of classes and does not promise a val image for every class, both common
    with small photo collections.
    """
    if not 0 < fraction < 1:
        raise UsageError(f"validation fraction must be between 0 and 1, got {fraction}", hint="0.2 keeps a fifth for validation")
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        by_class[sample.label].append(index)
    chosen: set[int] = set()
    for label in sorted(by_class):
        # Sorting by path makes the draw independent of the input order.
        members = sorted(by_class[label], key=lambda i: (samples[i].path, i))
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, int(fraction * len(members) + 0.5)))
        # One generator per class: adding a class does not reshuffle the others.
        rng = np.random.default_rng([seed % 2**63, zlib.crc32(label.encode())])
        chosen.update(members[i] for i in rng.permutation(len(members))[:take])
    train = [s for i, s in enumerate(samples) if i not in chosen]
    val = [s for i, s in enumerate(samples) if i in chosen]
    return train, val
