"""``ocula export RUN --format onnx``: the run's model as one ONNX graph, checked against PyTorch.

The graph carries the card's preprocessing: it takes the uint8 images exactly as validation
saw them (N x 3 x H x W after the resize and centre crop, 0..255) and returns class
probabilities, so a runtime needs nothing from ocula but the resize and crop the card
describes. The export is checked numerically on the run's own validation images (or seeded
random pixels when they are gone): the largest absolute difference in probability between
ONNX Runtime and PyTorch is reported, and an export above ``TOLERANCE`` is refused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ocula.errors import ModelError, first_line, unknown
from ocula.inference.engines import TorchEngine
from ocula.inference.predictor import Predictor
from ocula.models.card import ModelCard
from ocula.models.preprocess import Preprocessing
from ocula.storage import RunDir, read_json, write_json

FORMATS = ("onnx",)
TOLERANCE = 1e-4  # probability; float32 kernels differ by ~1e-6 on this model
CHECK_IMAGES = 16
INPUT, OUTPUT = "images", "probabilities"


class ExportError(ModelError):
    """The model could not be converted, or the conversion disagrees with PyTorch."""


@dataclass(frozen=True)
class Export:
    path: Path
    max_abs_diff: float
    checked_on: str
    seconds: float
    temperature: float = 1.0  # the card's, inside the graph

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "max_abs_diff": self.max_abs_diff, "checked_on": self.checked_on,
                "seconds": round(self.seconds, 2), "input": INPUT, "output": OUTPUT, "tolerance": TOLERANCE,
                "temperature": self.temperature}


class WithPreprocessing(nn.Module):
    """uint8 NCHW images -> class probabilities: normalisation, model, the card's temperature and
    softmax (independent sigmoids for a multi-label model) in one graph."""

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, temperature: float = 1.0,
                 multi_label: bool = False) -> None:
        super().__init__()
        self.model = model
        self.preprocessing = preprocessing
        self.temperature = temperature
        self.multi_label = multi_label

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(self.preprocessing.normalize(images)) / self.temperature
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)


def export(run: str | os.PathLike[str], *, format: str = "onnx") -> Export:  # noqa: A002 (the CLI's word)
    """Write ``RUN/model/model.onnx`` and ``RUN/model/export.json``; return what was checked."""
    if format not in FORMATS:
        raise unknown("export format", format, FORMATS)
    run_dir = RunDir.open(run, need=("card", "weights"))
    began = time.perf_counter()
    card = ModelCard.from_json(run_dir.card)
    engine = TorchEngine.load(card, run_dir.weights)
    wrapped = WithPreprocessing(engine.model, card.preprocessing, card.temperature, card.multi_label).eval()
    predictor = Predictor(card, engine)
    batch, checked_on = _check_batch(predictor, run_dir)
    target = run_dir.model_dir / "model.onnx"
    sample = batch[:2]
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    partial = target.with_suffix(".partial")
    try:
        program = torch.onnx.export(wrapped, (sample,), input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=dynamic, dynamo=True, verbose=False)
        program.save(str(partial))
    except Exception as error:  # noqa: BLE001 - an operator the exporter cannot convert: one line
        partial.unlink(missing_ok=True)
        raise ExportError(f"{predictor.card.arch} cannot be converted to ONNX: {first_line(error)}",
                          hint="serve it with --backend torch") from None
    difference = _max_abs_diff(partial, wrapped, batch)
    if not difference <= TOLERANCE:  # also refuses NaN
        partial.unlink()
        raise ExportError(f"the ONNX export differs from PyTorch by {difference:.2e} in probability",
                         hint=f"refused above {TOLERANCE:g}; please report the model name")
    os.replace(partial, target)
    result = Export(target, difference, checked_on, time.perf_counter() - began, card.temperature)
    write_json(run_dir.model_dir / "export.json", {"onnx": result.to_dict()})
    return result


def _check_batch(predictor: Predictor, run_dir: RunDir) -> tuple[torch.Tensor, str]:
    """Up to CHECK_IMAGES of the run's validation images as the model sees them, else random pixels."""
    paths = [row[0] for row in read_json(run_dir.split).get("val", [])[:CHECK_IMAGES]] if run_dir.split.exists() else []
    images = predictor.images(paths)  # images moved or damaged since training are left out
    if len(images) >= 2:
        return torch.from_numpy(images), f"{len(images)} validation images"
    size = predictor.card.input_size
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (CHECK_IMAGES, 3, size, size), dtype=torch.uint8, generator=generator), \
        f"{CHECK_IMAGES} random images (the validation images are not on this machine)"


@torch.inference_mode()
def _max_abs_diff(path: Path, model: nn.Module, batch: torch.Tensor) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_probs = session.run([OUTPUT], {INPUT: batch.numpy()})[0]
    return float(np.abs(onnx_probs - model(batch).numpy()).max())
