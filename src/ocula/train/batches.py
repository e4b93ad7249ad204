"""Batches from the decode cache, and evaluation over them.

Images come from the memory-mapped uint8 decode cache, are augmented as uint8 tensors, and are
turned into normalised floats one whole batch at a time in the main process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from ocula.data.decode_cache import DecodeCache
from ocula.evaluate import accuracy, top_k_accuracy


@dataclass
class Split:
    """One split as the loop sees it: cache keys, label indices, and the original paths."""

    paths: list[str]
    digests: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


class CachedImages(Dataset):
    def __init__(self, cache: DecodeCache, split: Split, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.cache, self.split, self.transform = cache, split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        array = np.array(self.cache.load(self.split.digests[i]))  # copy out of the memory map
        image = torch.from_numpy(array).permute(2, 0, 1)
        return self.transform(image), int(self.split.labels[i])


def cpu_budget(threads: int | None) -> tuple[int, int]:
    """(torch threads, loader workers) with threads x workers <= cores: no oversubscription."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads:
        return threads, 0
    workers = 0 if cores <= 2 else min(4, cores // 4)
    return max(1, cores - workers), workers


def loader(
    dataset: Dataset,
    batch_size: int,
    *,
    workers: int,
    shuffle: bool = False,
    sampler: Sampler | None = None,
    generator: torch.Generator | None = None,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        generator=generator,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=_one_thread if workers else None,
    )


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


@torch.inference_mode()
def predict(
    forward: Callable[[torch.Tensor], torch.Tensor],
    batches: DataLoader,
    normalize: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) over a loader of uint8 batches."""
    labels, logits = [], []
    for x, y in batches:
        x = normalize(x.contiguous(memory_format=torch.channels_last))
        logits.append(forward(x).float())
        labels.append(y)
    return torch.cat(labels).numpy(), torch.cat(logits).numpy()


def scores(prefix: str, labels: np.ndarray, logits: np.ndarray, top_k: int) -> dict[str, float]:
    """Loss, accuracy and top-k accuracy under SageMaker's metric names."""
    logits_t = torch.from_numpy(logits)
    loss = float(F.cross_entropy(logits_t, torch.from_numpy(labels)).item()) if len(labels) else 0.0
    probs = torch.softmax(logits_t, dim=1).numpy()
    return {
        f"{prefix}:loss": loss,
        f"{prefix}:accuracy": accuracy(labels, probs),
        f"{prefix}:top_k_accuracy": top_k_accuracy(labels, probs, top_k),
    }
