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
from ocula.models.device import CPU, Device
from ocula.evaluate import accuracy, top_k_accuracy
from ocula.evaluate.multilabel import mean_average_precision, subset_accuracy


@dataclass
class Split:
    """One split as the loop sees it: cache keys, label indices, and the original paths."""

    paths: list[str]
    digests: list[str]
    labels: np.ndarray  # class index per image; multi-label: N x K of 0/1

    @property
    def multi_label(self) -> bool:
        return self.labels.ndim == 2

    def __len__(self) -> int:
        return len(self.paths)


class CachedImages(Dataset):
    def __init__(self, cache: DecodeCache, split: Split, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.cache, self.split, self.transform = cache, split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        array = np.array(self.cache.load(self.split.digests[i]))  # copy out of the memory map
        image = torch.from_numpy(array).permute(2, 0, 1)
        label = self.split.labels[i]
        return self.transform(image), torch.from_numpy(label.astype(np.float32)) if label.ndim else int(label)


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
    pin_memory: bool = False,
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
        pin_memory=pin_memory,
    )


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


@torch.inference_mode()
def predict(
    forward: Callable[[torch.Tensor], torch.Tensor],
    batches: DataLoader,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: Device = CPU,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) over a loader of uint8 batches."""
    labels, logits = [], []
    for x, y in batches:
        x = normalize(device.put(x).contiguous(memory_format=torch.channels_last))
        with device.autocast():
            logits.append(forward(x).float().cpu())
        labels.append(y)
    return torch.cat(labels).numpy(), torch.cat(logits).numpy()


def scores(prefix: str, labels: np.ndarray, logits: np.ndarray, top_k: int) -> dict[str, float]:
    """Loss, accuracy and top-k accuracy under SageMaker's metric names. Multi-label (``labels``
    N x K): binary cross-entropy, subset accuracy at 0.5 and mAP (``<prefix>:mAP``) instead."""
    logits_t = torch.from_numpy(logits)
    if labels.ndim == 2:
        target = torch.from_numpy(labels.astype(np.float32))
        probs = torch.sigmoid(logits_t).numpy()
        return {
            f"{prefix}:loss": float(F.binary_cross_entropy_with_logits(logits_t, target).item()) if len(labels) else 0.0,
            f"{prefix}:accuracy": subset_accuracy(labels, probs >= 0.5),
            f"{prefix}:mAP": mean_average_precision(labels, probs),
        }
    loss = float(F.cross_entropy(logits_t, torch.from_numpy(labels)).item()) if len(labels) else 0.0
    probs = torch.softmax(logits_t, dim=1).numpy()
    return {
        f"{prefix}:loss": loss,
        f"{prefix}:accuracy": accuracy(labels, probs),
        f"{prefix}:top_k_accuracy": top_k_accuracy(labels, probs, top_k),
    }
