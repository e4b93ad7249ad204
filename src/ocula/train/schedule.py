"""Learning-rate schedule, early stopping and the per-epoch record: small pieces of the loop."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


def one_cycle(progress: float, pct_start: float = 0.25, div: float = 25.0, final_div: float = 1e4) -> float:
    """Multiplier of the peak rate at ``progress`` in [0, 1]: warm up, then cosine down (fastai/Smith)."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < pct_start:
        t = progress / pct_start
        lo, hi = 1.0 / div, 1.0
    else:
        t = (progress - pct_start) / (1.0 - pct_start)
        lo, hi = 1.0, 1.0 / final_div
    return hi + (lo - hi) * (1 + math.cos(math.pi * t)) / 2


def set_lr(optimizer: torch.optim.Optimizer, step: int, total_steps: int) -> None:
    """Each param group keeps its own peak in ``peak_lr``; set the rate for ``step`` (resumable)."""
    scale = one_cycle(step / max(total_steps, 1))
    for group in optimizer.param_groups:
        group["lr"] = group["peak_lr"] * scale


@dataclass
class History:
    """Per-epoch metrics, the best epoch, and the early-stopping decision."""

    patience: int
    min_epochs: int
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    metric: str = "validation:accuracy"  # multi-label runs choose by validation:mAP

    def add(self, record: dict[str, Any]) -> bool:
        """Record one epoch; True when it is the best so far (by ``metric``, then loss)."""
        self.epochs.append(record)
        key = (record[self.metric], -record["validation:loss"])
        if not self.best or key > (self.best[self.metric], -self.best["validation:loss"]):
            self.best = dict(record)
            return True
        return False

    def should_stop(self) -> bool:
        if len(self.epochs) < self.min_epochs or not self.best:
            return False
        return self.epochs[-1]["epoch"] - self.best["epoch"] >= self.patience

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best": self.best}


def epoch_line(record: dict[str, Any]) -> str:
    """The parseable line SageMaker metric definitions expect: epoch=3 train:loss=0.41 ..."""
    parts = [f"epoch={record['epoch']}"]
    parts += [f"{k}={v:.4f}" for k, v in record.items() if ":" in k and isinstance(v, float)]
    return " ".join(parts)
