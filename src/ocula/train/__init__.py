"""The training job: ``train(...)`` returns a ``Run``; ``evaluate`` and ``compare`` score runs.

These are thin entry points: the job's modules (torch, timm) load on the first call, so that
importing ocula costs nothing a server does not need.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"Run": "ocula.train.run", "Evaluation": "ocula.train.evaluation"}


def _entry(module: str, name: str):
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = __name__
    call.__doc__ = f"Calls {module}.{name} (see there); loads the training stack on first use."
    return call


train = _entry("ocula.train.job", "train")
evaluate = _entry("ocula.train.evaluation", "evaluate")
compare = _entry("ocula.train.evaluation", "compare")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ocula.train' has no attribute {name!r}")


__all__ = ["Evaluation", "Run", "compare", "evaluate", "train"]
