"""Engines: cropped uint8 images (N x 3 x S x S) in, class probabilities (N x classes) out.

``OnnxEngine`` runs the exported graph (normalisation and softmax inside it) on ONNX Runtime;
``TorchEngine`` runs the weights with the card's normalisation, for a model not exported yet
or one a caller needs as a ``torch.nn.Module`` (export, gradients). Neither decodes an image:
``ocula.inference.predictor.Predictor`` does that, once, for every command.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ocula.errors import ModelError, first_line
from ocula.models.card import ModelCard
from ocula.models.preprocess import Preprocessing

if TYPE_CHECKING:
    from torch import nn


class Engine(Protocol):
    name: str  # the runtime, as ``describe`` shows it
    source: Path  # the file it runs

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of returning it to the OS after every batch.

    By default each large activation buffer is unmapped when freed and page-faulted back in
    on the next step: on a 2-core machine that shows as ``sys`` time as high as ``user`` time
    and halves training throughput (measured: full fine-tuning 19 -> 34 images/s).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl or another libc: nothing to tune
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 1 << 25)
    libc.mallopt(m_trim_threshold, 2**31 - 1)
    libc.mallopt(m_top_pad, 1 << 30)


def cpu_count() -> int:
    """The cores this process may use (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxEngine:
    name = "onnxruntime"

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_count()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The engine shares the cores with decoding (and corruption, and HTTP) threads: worker
        # threads that spin between calls would take their CPU (measured: +5% evaluation images/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - a damaged or foreign file: one line
            raise ModelError(f"cannot load {path}: {first_line(error)}", hint="re-run `ocula export RUN`") from None
        self.source = Path(path)
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {self.input: np.ascontiguousarray(images)})[0]


class TorchEngine:
    name = "pytorch"

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, *, source: Path,
                 threads: int | None = None, temperature: float = 1.0, multi_label: bool = False) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        keep_freed_memory()
        self.model = model.eval()
        self.preprocessing = preprocessing
        self.temperature = temperature  # the card's: logits / T before the softmax
        self.multi_label = multi_label  # independent sigmoids instead of the softmax
        self.source = Path(source)
        self._torch = torch

    @classmethod
    def load(cls, card: ModelCard, weights: Path, *, threads: int | None = None) -> TorchEngine:
        """The card's architecture with ``weights`` (a weights-only load: the file is untrusted)."""
        from ocula.models.checkpoint import load_torch_file
        from ocula.models.registry import create_model

        if not weights.exists():
            raise ModelError(f"{weights} is missing", hint="pass a run directory written by `ocula train`")
        model, _, _ = create_model(card.arch, len(card.labels), pretrained="none", drop_rate=0.0,
                                   image_size=card.input_size)
        state = load_torch_file(weights, what="weights", hint="pass a run directory written by `ocula train`")
        try:
            model.load_state_dict(state)  # type: ignore[arg-type]
        except Exception as error:  # weights of another model: say so in one line
            raise ModelError(f"cannot load {weights}: {first_line(error)}") from None
        return cls(model, card.preprocessing, source=weights, threads=threads, temperature=card.temperature,
                   multi_label=card.multi_label)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images)).contiguous(memory_format=torch.channels_last)
            logits = self.model(self.preprocessing.normalize(x)).float() / self.temperature
            return (torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)).numpy()
