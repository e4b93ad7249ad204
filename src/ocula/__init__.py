"""ocula: image classification by transfer learning, offline, from audit to endpoint.

The public API is ``ocula.api`` (train, evaluate, compare, predict, automl), re-exported here;
``Run``, ``Evaluation`` and ``Predictor`` are the objects those calls return or use. Nothing
heavy loads on ``import ocula``: each job imports torch, timm or pandas on its first call.
"""

__version__ = "0.1.0"

# The packages ``ocula.train`` and ``ocula.evaluate`` share their names with API functions.
# Importing them first means no later ``import ocula.train.job`` rebinds ``ocula.train`` to the
# package: the attribute stays the function, and the packages are reached by their full names.
import ocula.evaluate  # noqa: E402,F401
import ocula.train  # noqa: E402,F401
from ocula.api import automl, compare, evaluate, predict, train  # noqa: E402
from ocula.errors import OculaError  # noqa: E402

_LAZY = {"Run": "ocula.train.run", "Evaluation": "ocula.evaluate.job", "Predictor": "ocula.inference.predictor",
         "Prediction": "ocula.inference.predictor"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ocula' has no attribute {name!r}")


__all__ = ["Evaluation", "OculaError", "Prediction", "Predictor", "Run", "__version__", "automl", "compare",
           "evaluate", "predict", "train"]
