"""Where the model looked: Grad-CAM heatmaps on the run's PyTorch model.

Grad-CAM (Selvaraju et al., 2017) at the backbone's last feature map: each channel is weighted
by the mean gradient of the class score over its positions, the weighted channels summed and
rectified. Every model ocula trains ends in global pooling and a linear classifier, so the
backward pass only crosses the head: an explanation costs about one forward pass, and equals the
class activation map (Zhou et al., 2016) of that classifier. Needs the weights (``weights.pt``):
an ONNX graph ends in probabilities and has no gradients to ask.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ocula.errors import ImageError, UsageError
from ocula.inference.engines import TorchEngine
from ocula.inference.predictor import Predictor, above
from ocula.models.card import ModelCard
from ocula.storage import RunDir

OVERLAY_ALPHA = 0.5  # share of the heatmap's colour in the overlay


@dataclass
class Explanation:
    """One image's heatmap for ``label`` (HWC uint8 overlay on the crop the model saw)."""

    source: str
    label: str
    probability: float
    overlay: np.ndarray


class Explainer:
    """Heatmaps of any class for cropped uint8 images (N x 3 x S x S), values in [0, 1]."""

    def __init__(self, engine: TorchEngine, card: ModelCard) -> None:
        model = engine.model
        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise UsageError(f"cannot explain a {type(model).__name__}: it has no separate feature map and head")
        self.engine = engine
        self.predictor = Predictor(card, engine)

    @classmethod
    def from_engine(cls, engine: object, card: ModelCard) -> Explainer | None:
        """An explainer sharing a predictor's PyTorch model; None when it runs another engine."""
        return cls(engine, card) if isinstance(engine, TorchEngine) else None

    @classmethod
    def from_run(cls, run: str | os.PathLike[str]) -> Explainer:
        run_dir = RunDir.open(run, need=("card",))
        if not run_dir.weights.exists():
            raise UsageError(f"{run_dir.path} has no PyTorch weights ({run_dir.weights}): explanations need them",
                             hint="explain with the run directory `ocula train` wrote, not an exported model alone")
        card = ModelCard.from_json(run_dir.card)
        return cls(TorchEngine.load(card, run_dir.weights), card)

    def explain_files(self, sources: list[str]) -> list[list[Explanation] | ImageError]:
        """Per file, in order: the heatmap of its top class (multi-label: one per label at or above
        its threshold, the top one when none is); an unusable file is its ``ImageError``."""
        found: dict[int, list[Explanation] | ImageError] = dict()
        labels, card = self.predictor.labels, self.predictor.card
        thresholds = card.decision_thresholds()
        for batch in self.predictor.stream(sources):
            probs = batch.probabilities
            assert probs is not None
            found.update(dict(batch.failed))
            wanted = [(i, image, row, above(row, thresholds) if card.multi_label else [])
                      for i, image, row in zip(batch.positions, batch.images, probs)]
            pairs = [(i, image, row, k) for i, image, row, chosen in wanted for k in (chosen or [int(row.argmax())])]
            if not pairs:
                continue
            heat = self.heatmaps(np.stack([image for _, image, _, _ in pairs]), [k for *_, k in pairs])
            for (i, image, row, k), h in zip(pairs, heat):
                found.setdefault(i, []).append(Explanation(sources[i], labels[k], float(row[k]), overlay(image, h)))  # type: ignore[union-attr]
        return [found[i] for i in range(len(sources))]

    def heatmaps(self, images: np.ndarray, classes: np.ndarray | list[int]) -> np.ndarray:
        """Grad-CAM of ``classes[i]`` on ``images[i]``, upsampled to the input size, each scaled to max 1."""
        model, pre = self.engine.model, self.engine.preprocessing
        x = torch.from_numpy(np.ascontiguousarray(images)).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            maps = model.forward_features(pre.normalize(x)).float()  # type: ignore[operator]
        maps.requires_grad_(True)  # a leaf: the backward pass crosses the head only
        with torch.enable_grad():
            logits = model.forward_head(maps)  # type: ignore[operator]
            chosen = logits[torch.arange(len(images)), torch.as_tensor(np.asarray(classes), dtype=torch.long)]
            (grads,) = torch.autograd.grad(chosen.sum(), maps)
        with torch.no_grad():
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * maps).sum(1, keepdim=True))
            cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            peak = cam.flatten(1).max(1).values.clamp_min(1e-12)
            return (cam / peak[:, None, None]).numpy()


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """A cropped CHW uint8 image with ``heatmap`` (H x W in [0, 1]) over it in colour: HWC uint8."""
    from matplotlib import colormaps

    colour = colormaps["jet"](np.clip(heatmap, 0, 1))[..., :3]
    base = image.transpose(1, 2, 0).astype(np.float32) / 255
    return (np.clip((1 - alpha) * base + alpha * colour, 0, 1) * 255).round().astype(np.uint8)


def png(image: np.ndarray) -> bytes:
    """HWC uint8 -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
