"""Serving a run: ONNX export, the runner, the batching queue, the HTTP app, batch scoring, monitoring.

Imports models, data and storage, never train or tune: a server installs and starts without
the training stack. Serving on ONNX Runtime does not import torch; ``export`` (and the PyTorch
fallback runner) load it when called.
"""

from typing import Any


def export(*args: Any, **kwargs: Any) -> Any:
    """``ocula.serve.export.export`` (imports torch on first call)."""
    from ocula.serve.export import export as run

    return run(*args, **kwargs)


__all__ = ["export"]
