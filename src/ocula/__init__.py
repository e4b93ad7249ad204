"""ocula: image classification by transfer learning, offline, from audit to endpoint.

``ocula.train``, ``ocula.evaluate`` and ``ocula.compare`` are functions that load the training
stack (torch, timm) on their first call, so ``import ocula`` stays light and a server
(``ocula.serve``) starts on ONNX Runtime without importing torch.
"""

__version__ = "0.1.0"

import ocula.evaluate  # noqa: E402,F401  (the metrics package first, so the name below stays the function)
from ocula.errors import OculaError  # noqa: E402
from ocula.tabular import automl  # noqa: E402  (loads pandas and scikit-learn on the first call)
from ocula.train import compare, evaluate, train  # noqa: E402  (binds ocula.train to the function)

_LAZY = {"Run": "ocula.train.run", "Evaluation": "ocula.train.evaluation"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ocula' has no attribute {name!r}")


__all__ = ["Evaluation", "OculaError", "Run", "__version__", "automl", "compare", "evaluate", "train"]
