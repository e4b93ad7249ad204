"""Head training on cached backbone features (feature-extraction mode).

The frozen backbone sees each image once per view (one clean view and a few augmented ones),
and every epoch trains only the classifier on those features: the backbone's forward pass,
which is almost all of the cost, is paid once instead of once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ocula.models.device import CPU, Device
from ocula.train.batches import loader, scores
from ocula.storage.log import RunLog
from ocula.train.loop import correct as count_correct
from ocula.train.schedule import set_lr


@torch.inference_mode()
def extract(
    features: Callable[[torch.Tensor], torch.Tensor],
    dataset: Dataset,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    workers: int,
    log: RunLog,
    description: str,
    device: Device = CPU,
) -> torch.Tensor:
    """Pooled features of every image in ``dataset`` as one float32 tensor [N, F] (on ``device``)."""
    out = []
    with log.progress(description, len(dataset)) as advance:
        for x, _ in loader(dataset, batch_size, workers=workers, pin_memory=device.pin_memory):
            x = normalize(device.put(x).contiguous(memory_format=torch.channels_last))
            with device.autocast():
                out.append(features(x).float())
            advance(len(x))
    return torch.cat(out)


class HeadDraws:
    """Each epoch's random choices: which view of every image, and the order (or, with
    ``sample_weights``, a class-balanced draw with replacement)."""

    def __init__(self, n: int, views: int, sample_weights: torch.Tensor | None, generator: torch.Generator):
        self.n, self.views, self.weights, self.generator = n, views, sample_weights, generator

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        which = torch.randint(self.views, (self.n,), generator=self.generator)
        if self.weights is None:
            order = torch.randperm(self.n, generator=self.generator)
        else:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=self.generator)
        return which, order


def head_epochs(
    classifier: nn.Module,
    views: torch.Tensor,
    labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: np.ndarray,
    *,
    epochs: int,
    start_epoch: int,
    optimizer: torch.optim.Optimizer,
    step: int,
    total_steps: int,
    criterion: nn.Module,
    drop_rate: float,
    batch_size: int,
    top_k: int,
    draws: HeadDraws,
):
    """Yield (epoch, record, step) after each epoch; the caller decides about stopping and saving.

    ``views`` is [V, N, F]: each epoch draws, for every image, one of its V views at random.
    """
    n = labels.shape[0]
    for epoch in range(start_epoch, epochs):
        classifier.train()
        which, order = draws()
        loss_sum, correct = 0.0, 0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            x = F.dropout(views[which[idx].to(views.device), idx.to(views.device)], p=drop_rate, training=True)
            y = labels[idx].to(views.device)
            set_lr(optimizer, step, total_steps)
            logits = classifier(x)
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += count_correct(logits, y)
        classifier.eval()
        with torch.inference_mode():
            val_logits = classifier(val_features).float().cpu().numpy()
        record = {"train:loss": loss_sum / n, "train:accuracy": correct / n}
        record.update(scores("validation", val_labels, val_logits, top_k))
        yield epoch + 1, record, step
