"""Epochs that run images through the backbone: fine-tuning, last-N and full training."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ocula.models.device import CPU, Device
from ocula.models.freeze import set_train_mode
from ocula.train.batches import predict, scores
from ocula.storage.log import RunLog
from ocula.train.schedule import set_lr

Mixer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Batch = Callable[[torch.Tensor], torch.Tensor]


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    normalize: Batch,
    mixer: Mixer | None = None,
    erase: Batch | None = None,
    consistency: float = 0.0,
    device: Device = CPU,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[float, int]:
    """One optimiser step on a uint8 batch; returns (summed loss, correct predictions).

    A batch of view groups (B x V x C x H x W: each image as it is, then as V - 1 augmented
    photos of it, from ``PhonePhoto.views``) trains with AugMix's loss: cross-entropy on the
    first view plus ``consistency`` times the Jensen-Shannon divergence between the views'
    predictions."""
    x, y = device.put(x), device.put(y)
    views = x.shape[1] if x.dim() == 5 else 0
    if views:
        x = x.transpose(0, 1).flatten(0, 1)  # view-major: view v is rows v*B .. (v+1)*B - 1
    x = normalize(x.contiguous(memory_format=torch.channels_last))
    if erase is not None:
        x = erase(x)
    target = y
    if mixer is not None:
        x, target = mixer(x, y)
    with device.autocast():
        logits = model(x).float()
    if views:
        groups = logits.chunk(views)
        logits = groups[0]
        loss = criterion(logits, target) + consistency * jensen_shannon(groups, multi_label=y.dim() == 2)
    else:
        loss = criterion(logits, target)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:  # float16 on CUDA: scale the loss so small gradients do not underflow
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss.item() * len(y), correct(logits, y)


def correct(logits: torch.Tensor, y: torch.Tensor) -> int:
    """Images answered right: the top class, or (multi-label, ``y`` N x K) the whole label set at 0.5."""
    if y.dim() == 2:
        return int(((logits > 0) == (y > 0.5)).all(1).sum())
    return int((logits.argmax(1) == y).sum())


def jensen_shannon(logits: tuple[torch.Tensor, ...], multi_label: bool = False) -> torch.Tensor:
    """Mean Jensen-Shannon divergence between the predictions of several views of each image
    (Hendrycks et al., AugMix, 2020): zero when every view gets the same probabilities.
    ``multi_label``: each label is its own yes/no distribution, summed over labels."""
    if multi_label:
        probabilities = [torch.stack([torch.sigmoid(g), torch.sigmoid(-g)], dim=-1).flatten(1) for g in logits]
    else:
        probabilities = [F.softmax(group, dim=1) for group in logits]
    log_mixture = torch.clamp(sum(probabilities) / len(probabilities), 1e-7, 1).log()
    return sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probabilities) / len(probabilities)


def backbone_epochs(
    model: nn.Module,
    train_batches: DataLoader,
    val_batches: DataLoader,
    *,
    normalize: Batch,
    epochs: int,
    start_epoch: int,
    optimizer: torch.optim.Optimizer,
    step: int,
    total_steps: int,
    criterion: nn.Module,
    top_k: int,
    log: RunLog,
    mixer: Mixer | None = None,
    erase: Batch | None = None,
    consistency: float = 0.0,
    freeze_bn: bool = True,
    device: Device = CPU,
) -> Iterator[tuple[int, dict[str, float], int]]:
    """Yield (epoch, record, step) after each epoch; the caller saves, logs and stops.

    ``freeze_bn`` keeps batch-norm statistics as pretrained (Keras' advice for small batches);
    a model trained from scratch must learn them, so it passes False.
    """
    n = len(train_batches.dataset)
    scaler = device.scaler()
    for epoch in range(start_epoch, epochs):
        set_train_mode(model, freeze_bn=freeze_bn)
        loss_sum, correct, seen, began = 0.0, 0, 0, time.perf_counter()
        with log.progress(f"epoch {epoch + 1}/{epochs}", n) as advance:
            for x, y in train_batches:
                set_lr(optimizer, step, total_steps)
                loss, right = train_step(
                    model, x, y, optimizer=optimizer, criterion=criterion, normalize=normalize,
                    mixer=mixer, erase=erase, consistency=consistency, device=device, scaler=scaler,
                )
                step += 1
                loss_sum, correct, seen = loss_sum + loss, correct + right, seen + len(y)
                advance(len(y))
        train_seconds = time.perf_counter() - began
        model.eval()
        labels, logits = predict(model, val_batches, normalize, device)
        record = {"train:loss": loss_sum / seen, "train:accuracy": correct / seen}
        record.update(scores("validation", labels, logits, top_k))
        record["train_images_per_second"] = seen / train_seconds
        yield epoch + 1, record, step


def measure_step_seconds(
    model: nn.Module,
    train_batches: DataLoader,
    *,
    normalize: Batch,
    criterion: nn.Module,
    batches: int = 3,
    warmup: int = 2,
    freeze_bn: bool = True,
    device: Device = CPU,
) -> float:
    """Seconds per training image, timed on a few forward+backward passes that change nothing.

    Used to turn a time budget into a number of epochs before the schedule is fixed.
    """
    set_train_mode(model, freeze_bn=freeze_bn)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    times, batches_iter = [], iter(train_batches)
    for i in range(warmup + batches):
        began = time.perf_counter()
        try:
            x, y = next(batches_iter)  # loading and augmenting count too
        except StopIteration:
            break
        images = len(y)  # a training image with its augmented views counts once
        if x.dim() == 5:  # view groups: every view goes through the model
            x, y = x.flatten(0, 1), y.repeat_interleave(x.shape[1], dim=0)
        x = normalize(device.put(x).contiguous(memory_format=torch.channels_last))
        with device.autocast():
            logits = model(x).float()
        loss = criterion(logits, device.put(y))
        loss.backward()
        if i >= warmup:  # the first passes pay one-off allocation costs
            times.append((time.perf_counter() - began) / images)
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    return sum(times) / len(times) if times else 0.0
