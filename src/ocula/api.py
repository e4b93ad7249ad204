"""The public Python API: each function is one CLI command's job (``import ocula`` re-exports them).

The functions live here, in a module whose name is no package's, and load their job's modules
(torch, timm, pandas) on the first call: ``import ocula`` stays light, and a server starts on
ONNX Runtime without importing torch.

- ``train(data, **options) -> Run``: ``ocula.train.job.train``
- ``evaluate(run, data, split=, shift=, out=) -> Evaluation``: ``ocula.evaluate.job.evaluate``
- ``compare(paths, split=None) -> rows``: ``ocula.evaluate.job.compare``
- ``predict(run, images, top_k=5) -> list[Prediction]``: the run's ``Predictor``
- ``automl(table, target=, budget=) -> TabularRun``: ``ocula.tabular.job.automl``
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any


def _entry(module: str, name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = __name__
    call.__doc__ = f"Calls {module}.{name} (see there); loads its modules on first use."
    return call


train = _entry("ocula.train.job", "train")
evaluate = _entry("ocula.evaluate.job", "evaluate")
compare = _entry("ocula.evaluate.job", "compare")
automl = _entry("ocula.tabular.job", "automl")


def predict(run: str | os.PathLike[str], images: Sequence[str], top_k: int = 5,
            min_confidence: float | None = None, tta: bool = False) -> list[Any]:
    """The top-k (label, probability) pairs of each image file, as ``Prediction``s in order; an
    unusable file's ``Prediction`` has no labels and says why in ``error``; one whose top
    probability is below ``min_confidence`` is ``rejected`` and its ``label`` is None. ``tta``:
    average four views of each image (centre, mirrored, two corner crops): slower, often better."""
    from ocula.train.run import Run

    return Run(run).predict(images, top_k=top_k, min_confidence=min_confidence, tta=tta)
