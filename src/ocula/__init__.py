"""ocula: image classification by transfer learning, offline, from audit to endpoint."""

__version__ = "0.1.0"

from ocula.errors import OculaError  # noqa: E402
from ocula.train import Run, train  # noqa: E402  (binds ocula.train to the function, as users expect)
from ocula.train.evaluation import Evaluation, compare, evaluate  # noqa: E402  (likewise ocula.evaluate)

__all__ = ["Evaluation", "OculaError", "Run", "__version__", "compare", "evaluate", "train"]
