"""``Run``: what ``ocula.train`` returns, and what every later stage opens from a run directory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ocula.config import TrainConfig
from ocula.models import ModelCard
from ocula.inference import Prediction, Predictor, check_min_confidence
from ocula.storage import RunDir, read_json, read_yaml


class Run:
    """A finished (or interrupted) run directory, read lazily."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.dir = RunDir.open(path, need=("config",))
        self.path: Path = self.dir.path

    def __repr__(self) -> str:
        acc = self.best.get("validation:accuracy")
        return f"Run({str(self.path)!r}, validation:accuracy={acc})"

    @property
    def id(self) -> str:
        return self.dir.id

    @cached_property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(read_yaml(self.dir.config))

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return read_json(self.dir.metrics) if self.dir.metrics.exists() else {}

    @property
    def best(self) -> dict[str, Any]:
        return self.metrics.get("best", {})

    @cached_property
    def card(self) -> ModelCard:
        return ModelCard.from_json(self.dir.card)

    @cached_property
    def predictor(self) -> Predictor:
        """The run's model: ONNX Runtime when it has been exported, else PyTorch (no export for a few images)."""
        return Predictor.from_run(self.path, export=False)

    def predict(self, images: Sequence[str], top_k: int = 5, min_confidence: float | None = None,
                tta: bool = False) -> list[Prediction]:
        """Top-k (label, probability) pairs for each image path, in order; an unusable file is a
        ``Prediction`` whose ``error`` says why, and the others are still scored. An image whose top
        probability is below ``min_confidence`` is ``rejected`` (its ``label`` is None). ``tta``:
        average the probabilities of four views of each image (``Predictor.with_tta``)."""
        check_min_confidence(min_confidence, "min_confidence")  # before the model loads
        return self.predictor.with_tta(tta).predict(images, top_k, min_confidence)
