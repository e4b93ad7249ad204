"""The one inference path: encoded image -> decoded -> cropped -> engine -> probabilities.

Every command that scores images goes through ``Predictor``: ``predict``, ``evaluate`` (clean
and under shift), the training run's own report, ``batch``, ``monitor``, the server and the
int8 check. It decodes with the very function that filled the training cache
(``decode_resized``) and takes the card's centre crop, so every command sees the pixels
validation saw. ``stream`` is the only loop that reads, decodes and scores files: decoding runs
in threads a bounded number of batches ahead of the engine, so memory holds a few batches of
pixels whatever the number of images, and an unusable file is reported, never raised.

With ``tta`` (test-time augmentation) every image is scored as ``TTA_VIEWS`` (the centre crop,
its mirror image and two corner crops of the same resized image) and the probabilities averaged:
four times the engine's work for a point or so of accuracy (BENCHMARKS.md).
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ocula.data.decode_cache import decode_resized
from ocula.data.imageio import read_bytes
from ocula.data.stats import image_stats, unlike
from ocula.errors import ImageError, UsageError, unknown
from ocula.inference.engines import Engine, OnnxEngine, TorchEngine
from ocula.models.card import ModelCard
from ocula.storage import RunDir, read_json

BACKENDS = ("auto", "onnx", "torch")
MAX_PIXELS = 40_000_000  # a 12-megapixel phone photo passes; a 50-megapixel one is refused unread
INT8_NAME = "model.int8.onnx"
BATCH_SIZE = 16  # ONNX Runtime alone: 115 / 123 / 121 img/s at 8 / 16 / 32 on 2 cores, memory grows with it
PREFETCH = 2  # batches decoding ahead of the engine


@dataclass(frozen=True)
class View:
    """One test-time view of a resized image: where the crop sits (fraction of the spare rows,
    of the spare columns) and whether it is mirrored left to right."""

    name: str
    at: tuple[float, float]
    mirrored: bool = False


TTA_VIEWS = (View("centre", (0.5, 0.5)), View("mirrored", (0.5, 0.5), mirrored=True),
             View("top-left", (0.0, 0.0)), View("bottom-right", (1.0, 1.0)))


@dataclass(frozen=True)
class Prepared:
    """One decoded image: the resized array (for statistics and corruptions) and its original size."""

    array: np.ndarray  # HWC uint8, shorter side = the card's resize size
    size: tuple[int, int]  # (width, height) as sent


@dataclass
class Batch:
    """One batch of ``stream``: what decoded, as the model saw it, and what did not.

    ``positions`` index the ``sources`` given to ``stream``, in order; ``probabilities`` is None
    when the stream was asked not to score.
    """

    positions: list[int]
    prepared: list[Prepared]
    images: np.ndarray  # uint8 N x 3 x S x S
    probabilities: np.ndarray | None
    failed: list[tuple[int, ImageError]]


@dataclass(frozen=True)
class Prediction:
    """``ranked``: the top-k (label, probability) pairs, best first; empty when ``error`` says why not.
    ``rejected``: the top probability is below the ``min_confidence`` asked for, so there is no
    ``label`` (``ranked`` still says what the model thought)."""

    source: str
    ranked: list[tuple[str, float]]
    error: ImageError | None = None
    rejection: str | None = None  # why the image got no label (see ``Gate``)
    chosen: list[str] | None = None  # multi-label: every label at or above its threshold

    @property
    def rejected(self) -> bool:
        return self.rejection is not None

    @property
    def label(self) -> str | None:
        return self.ranked[0][0] if self.ranked and not self.rejected else None


def check_min_confidence(value: float | None, option: str = "--min-confidence") -> float | None:
    """A probability in [0, 1] (or None: answer every image), else a one-line ``UsageError``."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise UsageError(f"{option} {value:g} is not a probability: give a value between 0 and 1",
                         hint="`ocula evaluate` reports the threshold that keeps a target accuracy")
    return value


@dataclass(frozen=True)
class Gate:
    """The reject option: when to answer no label and ask for another photo.

    An image is rejected when its top probability is below ``min_confidence``, or when it is
    unlike every training photo (a statistic of ``ocula.data.stats`` outside the card's
    ``image_ranges``: a blank frame, noise, a photo far darker than any in training), which a
    classifier may still score with confidence.
    """

    min_confidence: float
    ranges: dict[str, list[float]]

    def why(self, row: np.ndarray, image: Prepared) -> str | None:
        """The reason ``row`` (the probabilities of ``image``) gets no label, or None."""
        top = float(row.max())
        if top < self.min_confidence:
            return f"top probability {top:.3f} is below {self.min_confidence:g}"
        return unlike(image_stats(image.array), self.ranges) if self.ranges else None


class Predictor:
    """A run's model card and an engine; decodes and scores images the way validation did."""

    def __init__(self, card: ModelCard, engine: Engine, *, max_pixels: int | None = MAX_PIXELS,
                 tta: bool = False) -> None:
        self.card = card
        self.engine = engine
        self.labels: list[str] = list(card.labels)
        self.preprocessing = card.preprocessing
        self.max_pixels = max_pixels
        self.views = TTA_VIEWS if tta else TTA_VIEWS[:1]

    @classmethod
    def from_run(cls, run: str | os.PathLike[str], *, backend: str = "auto", int8: bool = False,
                 threads: int | None = None, max_pixels: int | None = MAX_PIXELS, export: bool = True,
                 tta: bool = False, log: Callable[[str], None] | None = None) -> Predictor:
        """The run's model on ``backend`` (``tta``: scored as ``TTA_VIEWS``, averaged): ``onnx`` runs ``model/model.onnx``, ``torch`` the weights,
        ``auto`` ONNX Runtime with PyTorch as the fallback. A missing or stale export (older than the
        weights) is made now when ``export`` (a long job: serve, batch, evaluate) and left to PyTorch
        otherwise (a few images: ``predict``). ``int8`` needs ``ocula export --int8``."""
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
            if not _fresh(path, run_dir.weights, card.temperature, key="int8"):
                raise UsageError(f"{path} is older than the run's weights or calibration",
                                 hint=f"run `ocula export {run} --int8` again")
            return cls(card, OnnxEngine(path, threads=threads), max_pixels=max_pixels, tta=tta)
        path = run_dir.model_dir / "model.onnx"
        fresh = _fresh(path, run_dir.weights, card.temperature)
        if backend == "torch" or (backend == "auto" and not export and not fresh):
            return cls(card, TorchEngine.load(card, run_dir.weights, threads=threads), max_pixels=max_pixels, tta=tta)
        if not fresh:
            from ocula.inference.export import ExportError, export as export_onnx

            say(f"exporting {run_dir.path} to ONNX (once; `ocula export` does it ahead of time) ...")
            try:
                export_onnx(run_dir.path)
            except ExportError as error:  # a broken weights file is a ModelError and stops here
                if backend == "onnx":
                    raise
                say(f"ONNX export failed ({error}); running with PyTorch")
                return cls(card, TorchEngine.load(card, run_dir.weights, threads=threads), max_pixels=max_pixels, tta=tta)
        return cls(card, OnnxEngine(path, threads=threads), max_pixels=max_pixels, tta=tta)

    @property
    def backend(self) -> str:
        return self.engine.name

    def gate(self, min_confidence: float | None) -> Gate | None:
        """The reject option at ``min_confidence`` (None: answer every image)."""
        if check_min_confidence(min_confidence, "min_confidence") is None:
            return None
        return Gate(float(min_confidence), self.card.image_ranges)

    @property
    def tta(self) -> bool:
        return len(self.views) > 1

    def with_tta(self, tta: bool) -> Predictor:
        """This model with test-time augmentation on or off (the engine is shared)."""
        if tta == self.tta:
            return self
        return Predictor(self.card, self.engine, max_pixels=self.max_pixels, tta=tta)

    def describe(self) -> str:
        views = f", test-time augmentation: {len(self.views)} views" if self.tta else ""
        return f"{self.engine.name} ({self.engine.source.name}), {len(self.labels)} classes, " \
               f"input {self.card.input_size}px{views}"

    # -- one image -------------------------------------------------------------------------------

    def prepare(self, data: bytes, name: str = "<image>") -> Prepared:
        """Encoded image -> resized array, or ``ImageError`` (reason ``too_large`` above
        ``max_pixels``, read from the header before any pixel is decoded)."""
        if not data:
            raise ImageError(name, "zero_byte", "0 bytes")
        try:
            with Image.open(io.BytesIO(data)) as header:
                size = header.size
        except Image.DecompressionBombError as error:  # an image, far too large: Pillow refuses its header
            pixels = re.search(r"\((\d+) pixels\)", str(error))
            shown = f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "over Pillow's decompression-bomb limit"
            limit = f", the limit is {self.max_pixels / 1e6:g}" if self.max_pixels else ""
            raise ImageError(name, "too_large", shown + limit) from None
        except Exception as error:  # noqa: BLE001 - any other header failure is a bad image
            raise ImageError(name, "not_image", f"{len(data)} bytes, no known image format") from error
        if self.max_pixels and size[0] * size[1] > self.max_pixels:
            raise ImageError(name, "too_large", f"{size[0]}x{size[1]} is {size[0] * size[1] / 1e6:.0f} megapixels, "
                                                f"the limit is {self.max_pixels / 1e6:g}")
        return Prepared(decode_resized(data, name, self.preprocessing.resize_short_side), size)

    def crop(self, image: Prepared | np.ndarray) -> np.ndarray:
        """A prepared image (or a decoded, resized HWC array) -> the uint8 CHW input the model sees."""
        return self.preprocessing.crop(image.array if isinstance(image, Prepared) else image)

    # -- batches ---------------------------------------------------------------------------------

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x 3 x S x S (already cropped) -> float32 N x classes (one view: no TTA)."""
        return self.engine(images)

    def probabilities_of(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Decoded, resized HWC arrays (a corruption's output, say) -> probabilities."""
        return self._score(np.stack([self.crop(array) for array in arrays]), arrays)

    def _score(self, images: np.ndarray, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """The centre crops ``images`` of the resized ``arrays`` -> probabilities, averaged over
        the test-time views when there are several."""
        total = self.engine(images)
        for view in self.views[1:]:
            crops = [self.preprocessing.crop(array, view.at) for array in arrays]
            total = total + self.engine(np.stack([c[:, :, ::-1] if view.mirrored else c for c in crops]))
        return total / len(self.views) if self.tta else total

    def stream(self, sources: Sequence[str], *, batch_size: int = BATCH_SIZE, score: bool = True,
               pool: ThreadPoolExecutor | None = None) -> Iterator[Batch]:
        """Read, decode, crop and (``score``) run every source, a batch at a time, in order.

        Decoding runs in ``pool`` (default: two threads) at most ``PREFETCH`` batches ahead; a
        file that cannot be used is in ``Batch.failed`` with its reason, and the rest are scored.
        """
        own = pool is None
        pool = pool or ThreadPoolExecutor(max_workers=2, thread_name_prefix="ocula-decode")
        chunks = (range(i, min(i + batch_size, len(sources))) for i in range(0, len(sources), batch_size))
        try:
            pending = deque(pool.submit(self._load, sources, chunk) for chunk in islice(chunks, PREFETCH))
            while pending:
                batch = pending.popleft().result()
                following = next(chunks, None)
                if following is not None:
                    pending.append(pool.submit(self._load, sources, following))
                if score:
                    batch.probabilities = (self._score(batch.images, [p.array for p in batch.prepared])
                                           if batch.positions else np.zeros((0, len(self.labels)), np.float32))
                yield batch
        finally:
            if own:
                pool.shutdown(wait=False, cancel_futures=True)

    def images(self, sources: Sequence[str]) -> np.ndarray:
        """The cropped uint8 images (N x 3 x S x S) of the sources that decode; the others are left out."""
        size = self.card.input_size
        batches = [batch.images for batch in self.stream(sources, score=False)]
        return np.concatenate(batches) if batches else np.zeros((0, 3, size, size), np.uint8)

    def _load(self, sources: Sequence[str], chunk: range) -> Batch:
        positions, prepared, failed = [], [], []
        for i in chunk:
            try:
                prepared.append(self.prepare(read_bytes(sources[i]), sources[i]))
                positions.append(i)
            except ImageError as error:
                failed.append((i, error))
            except Exception as error:  # noqa: BLE001 - one odd file must not end a long run
                failed.append((i, ImageError(sources[i], "unreadable", f"{type(error).__name__}: {error}")))
        size = self.card.input_size
        images = np.stack([self.crop(p) for p in prepared]) if prepared else np.zeros((0, 3, size, size), np.uint8)
        return Batch(positions, prepared, images, None, failed)

    def predict(self, paths: Sequence[str], top_k: int = 5, min_confidence: float | None = None) -> list[Prediction]:
        """The top-k labels of each image file, in order; an unusable file carries its error, an
        image whose top probability is below ``min_confidence`` is ``rejected``."""
        gate = self.gate(min_confidence)
        k = min(top_k, len(self.labels))
        thresholds = self.card.decision_thresholds()
        found: dict[int, Prediction] = {}
        for batch in self.stream(paths):
            for i, row, image in zip(batch.positions, batch.probabilities, batch.prepared):  # type: ignore[arg-type]
                order = np.argsort(-row, kind="stable")[:k]
                chosen = [self.labels[j] for j in above(row, thresholds)] if self.card.multi_label else None
                found[i] = Prediction(paths[i], [(self.labels[j], float(row[j])) for j in order],
                                      rejection=gate.why(row, image) if gate else None, chosen=chosen)
            for i, error in batch.failed:
                found[i] = Prediction(paths[i], [], error)
        return [found[i] for i in range(len(paths))]


def prediction_record(source: str, row: np.ndarray, labels: Sequence[str], k: int = 1,
                      true_label: str | None = None, gate: Gate | None = None,
                      image: Prepared | None = None) -> dict[str, Any]:
    """One line of ``ocula batch`` (and of an evaluation's predictions.jsonl): ``source``, ``label``,
    ``probability``, ``prediction`` (class index), + ``true_label`` when known, + ``top_k`` when k > 1.
    With a ``gate`` (and the ``image``), + ``rejected``; a rejected line has ``label`` and
    ``prediction`` null, a ``reason``, and keeps the top ``probability`` (and ``top_k``: what the
    model thought)."""
    best = int(row.argmax())
    reason = gate.why(row, image) if gate is not None and image is not None else None
    record: dict[str, Any] = {"source": source, "label": None if reason else labels[best],
                              "probability": round(float(row[best]), 6), "prediction": None if reason else best}
    if gate is not None:
        record["rejected"] = reason is not None
        if reason:
            record["reason"] = reason
    if true_label is not None:
        record["true_label"] = true_label
    if k > 1:
        order = np.argsort(-row, kind="stable")[:k]
        record["top_k"] = [[labels[j], round(float(row[j]), 6)] for j in order]
    return record


def above(row: np.ndarray, thresholds: Sequence[float]) -> list[int]:
    """Multi-label: the classes whose probability reaches their threshold, most probable first."""
    return [int(j) for j in np.argsort(-row, kind="stable") if row[j] >= thresholds[j]]


def multilabel_record(source: str, row: np.ndarray, labels: Sequence[str], thresholds: Sequence[float],
                      true_labels: Sequence[str] | None = None) -> dict[str, Any]:
    """One line of ``ocula batch`` for a multi-label model: the ``labels`` at or above their
    thresholds (most probable first) with their ``scores``, every class's ``probabilities``, and
    ``true_labels`` when known."""
    chosen = above(row, thresholds)
    record: dict[str, Any] = {"source": source, "labels": [labels[j] for j in chosen],
                              "scores": [round(float(row[j]), 6) for j in chosen],
                              "probabilities": [round(float(p), 6) for p in row]}
    if true_labels is not None:
        record["true_labels"] = list(true_labels)
    return record


def _fresh(onnx_path: Path, weights: Path, temperature: float, key: str = "onnx") -> bool:
    """The export exists, was checked, is newer than the weights it came from, and holds the
    card's temperature (an export from before calibration holds 1)."""
    record = onnx_path.with_name("export.json")
    if not (onnx_path.exists() and record.exists()):
        return False
    try:
        exported = float(read_json(record)[key].get("temperature", 1.0))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return abs(exported - temperature) <= 1e-9 and onnx_path.stat().st_mtime >= weights.stat().st_mtime
