"""Predictions from a run directory alone: the card rebuilds the exact evaluation preprocessing.

The pixels go through the same functions as training's validation images (decode, resize the
shorter side as the decode cache does, centre crop, normalise), so there is no train/serve skew.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ocula.data.decode_cache import decode_resized
from ocula.data.imageio import read_bytes
from ocula.errors import ModelError, first_line
from ocula.models.card import ModelCard, find_card
from ocula.models.checkpoint import load_torch_file
from ocula.models.registry import create_model


class Predictor:
    """A loaded model with its card; ``probabilities`` takes encoded images (bytes)."""

    def __init__(self, model: nn.Module, card: ModelCard) -> None:
        self.model = model.eval()
        self.card = card
        self.preprocessing = card.preprocessing

    @classmethod
    def from_run(cls, path: str | os.PathLike[str]) -> Predictor:
        card_path = find_card(path)
        card = ModelCard.from_json(card_path)
        weights = card_path.parent / "weights.pt"
        if not weights.exists():
            raise ModelError(f"{weights} is missing", hint="pass a run directory written by `ocula train`")
        model, _, _ = create_model(card.arch, len(card.labels), pretrained="none", drop_rate=0.0,
                                   image_size=card.input_size)
        state = load_torch_file(weights, what="weights", hint="pass a run directory written by `ocula train`")
        try:
            model.load_state_dict(state)  # type: ignore[arg-type]
        except Exception as error:  # weights of another model: say so in one line
            raise ModelError(f"cannot load {weights}: {first_line(error)}") from None
        return cls(model, card)

    def tensor(self, data: bytes, name: str = "<image>") -> torch.Tensor:
        """Encoded image -> uint8 CHW tensor exactly as validation saw it (ImageError if unusable)."""
        return self.cropped(decode_resized(data, name, self.preprocessing.resize_short_side))

    def cropped(self, array: np.ndarray) -> torch.Tensor:
        """A decoded, resized HWC uint8 array -> the uint8 CHW input the model sees (centre crop)."""
        return torch.from_numpy(self.preprocessing.crop(array))

    def probabilities(self, images: list[bytes]) -> np.ndarray:
        return self.probabilities_of(torch.stack([self.tensor(data) for data in images]))

    @torch.inference_mode()
    def probabilities_of(self, batch: torch.Tensor) -> np.ndarray:
        """Class probabilities [N, C] for a uint8 NCHW batch already cropped to the input size."""
        x = self.preprocessing.normalize(batch.contiguous(memory_format=torch.channels_last))
        return torch.softmax(self.model(x).float(), dim=1).numpy()

    def top_k(self, paths: list[str], k: int = 5) -> list[list[tuple[str, float]]]:
        probs = self.probabilities([read_bytes(p) for p in paths])
        k = min(k, probs.shape[1])
        order = np.argsort(-probs, axis=1)[:, :k]
        return [[(self.card.labels[j], float(row[j])) for j in top] for row, top in zip(probs, order)]
