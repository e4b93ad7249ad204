"""A run's model as ``predict(uint8 batch) -> probabilities``, on ONNX Runtime or PyTorch.

The runner also owns the request-side preprocessing rebuilt from the card: ``prepare``
decodes encoded bytes with the very function that filled the training cache
(``decode_resized``) and ``crop`` takes the centre crop, so a served model sees the pixels it
was validated on. Nothing here knows about HTTP or batching.
"""

from __future__ import annotations

import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ocula.data.decode_cache import decode_resized
from ocula.errors import ImageError, ModelError, UsageError, first_line, unknown
from ocula.models.card import ModelCard
from ocula.storage import RunDir, read_json

BACKENDS = ("auto", "onnx", "torch")
MAX_PIXELS = 40_000_000  # a 12-megapixel phone photo passes; a 50-megapixel one is refused unread
INT8_NAME = "model.int8.onnx"


@dataclass(frozen=True)
class Prepared:
    """One decoded request image: the resized array (for statistics) and its original size."""

    array: np.ndarray  # HWC uint8, shorter side = the card's resize size
    size: tuple[int, int]  # (width, height) as sent


class Runner:
    """Labels, preprocessing and ``predict``; subclasses bind a runtime."""

    backend = "none"

    def __init__(self, card: ModelCard, source: Path, *, max_pixels: int = MAX_PIXELS) -> None:
        self.card = card
        self.labels: list[str] = list(card.labels)
        self.preprocessing = card.preprocessing
        self.source = source
        self.max_pixels = max_pixels

    def prepare(self, data: bytes, name: str = "<request>") -> Prepared:
        """Encoded image -> resized array; ``ImageError`` (reason ``too_large`` above
        ``max_pixels``, read from the header before any pixel is decoded)."""
        if not data:
            raise ImageError(name, "zero_byte", "0 bytes")
        try:
            with Image.open(io.BytesIO(data)) as header:
                size = header.size
        except Image.DecompressionBombError as error:  # an image, far too large: Pillow refuses its header
            pixels = re.search(r"\((\d+) pixels\)", str(error))
            shown = f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "over Pillow's decompression-bomb limit"
            raise ImageError(name, "too_large", f"{shown}, the limit is {self.max_pixels / 1e6:g}") from None
        except Exception as error:  # noqa: BLE001 - any other header failure is a bad image
            raise ImageError(name, "not_image", f"{len(data)} bytes, no known image format") from error
        if size[0] * size[1] > self.max_pixels:
            raise ImageError(name, "too_large", f"{size[0]}x{size[1]} is {size[0] * size[1] / 1e6:.0f} megapixels, "
                                                f"the limit is {self.max_pixels / 1e6:g}")
        return Prepared(decode_resized(data, name, self.preprocessing.resize_short_side), size)

    def crop(self, prepared: Prepared) -> np.ndarray:
        return self.preprocessing.crop(prepared.array)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 N x 3 x S x S -> float32 N x classes."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.backend} ({self.source.name}), {len(self.labels)} classes, input {self.card.input_size}px"


class OnnxRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, card: ModelCard, path: Path, *, threads: int | None = None, **kwargs: int) -> None:
        import onnxruntime as ort

        super().__init__(card, path, **kwargs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_count()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - a damaged or foreign file: one line
            raise ModelError(f"cannot load {path}: {first_line(error)}",
                             hint="re-run `ocula export RUN`") from None
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {self.input: np.ascontiguousarray(batch)})[0]


class TorchRunner(Runner):
    backend = "pytorch"

    def __init__(self, run: Path, *, threads: int | None = None, **kwargs: int) -> None:
        import torch

        from ocula.models.predictor import Predictor

        if threads:
            torch.set_num_threads(threads)
        self.predictor = Predictor.from_run(run)
        super().__init__(self.predictor.card, run / "model" / "weights.pt", **kwargs)
        self._torch = torch

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.predictor.probabilities_of(self._torch.from_numpy(np.ascontiguousarray(batch)))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def is_tabular(run_dir: RunDir) -> bool:
    """True for an ``ocula automl`` run (its card says so); the image loader judges any other card."""
    try:
        return read_json(run_dir.card).get("type") == "tabular"
    except (ValueError, OSError, AttributeError):
        return False


def load_runner(run: str | os.PathLike[str], *, backend: str = "auto", int8: bool = False,
                threads: int | None = None, max_pixels: int = MAX_PIXELS, log=None) -> Runner:
    """The run's model on ``backend``: ``onnx`` uses ``model/model.onnx`` (exported now when it
    is missing or older than the weights), ``torch`` the weights, ``auto`` ONNX Runtime with
    PyTorch as the fallback when the export fails. ``int8`` needs ``ocula export --int8``."""
    say = log or (lambda message: print(message, file=sys.stderr))
    if backend not in BACKENDS:
        raise unknown("backend", backend, BACKENDS)
    run_dir = RunDir.open(run, need=("card", "weights"))
    card = ModelCard.from_json(run_dir.card)
    if int8:
        path = run_dir.model_dir / INT8_NAME
        if backend == "torch" or not path.exists():
            raise UsageError(f"{path} is missing" if backend != "torch" else "--int8 runs on ONNX Runtime only",
                             hint=f"run `ocula export {run} --int8` first")
        return OnnxRunner(card, path, threads=threads, max_pixels=max_pixels)
    if backend == "torch":
        return TorchRunner(run_dir.path, threads=threads, max_pixels=max_pixels)
    path = run_dir.model_dir / "model.onnx"
    if not _fresh(path, run_dir.weights):
        from ocula.serve.export import ExportError, export

        say(f"exporting {run_dir.path} to ONNX (once; `ocula export` does it ahead of time) ...")
        try:
            export(run_dir.path)
        except ExportError as error:  # a broken weights file is a ModelError and stops here
            if backend == "onnx":
                raise
            say(f"ONNX export failed ({error}); serving with PyTorch")
            return TorchRunner(run_dir.path, threads=threads, max_pixels=max_pixels)
    return OnnxRunner(card, path, threads=threads, max_pixels=max_pixels)


def _fresh(onnx_path: Path, weights: Path) -> bool:
    """The export exists, was checked, and is newer than the weights it came from."""
    record = onnx_path.with_name("export.json")
    if not (onnx_path.exists() and record.exists()):
        return False
    try:
        read_json(record)["onnx"]
    except (ValueError, KeyError, TypeError):
        return False
    return onnx_path.stat().st_mtime >= weights.stat().st_mtime
