"""Shared helpers for the ocula.models tests: nothing here touches the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn


def write_run(root: Path, model: nn.Module, labels: list[str], arch: str, **card_overrides: object) -> Path:
    """A minimal previous run: ``root/model/weights.pt`` + ``root/model/card.json``."""
    from ocula.models import ModelCard, preprocessing_for

    model_dir = root / "model"
    model_dir.mkdir(parents=True)
    torch.save(model.state_dict(), model_dir / "weights.pt")
    card = ModelCard.from_preprocessing(
        preprocessing_for(arch, "none"), labels=labels, arch=arch, mode="full", pretrained="test"
    )
    data = {**card.to_dict(), **card_overrides}
    (model_dir / "card.json").write_text(json.dumps(data))
    return root


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)
