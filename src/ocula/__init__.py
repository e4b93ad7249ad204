"""ocula: image classification by transfer learning, offline, from audit to endpoint."""

__version__ = "0.1.0"

from ocula.errors import OculaError  # noqa: E402
from ocula.train import Run, train  # noqa: E402  (binds ocula.train to the function, as users expect)

__all__ = ["OculaError", "Run", "__version__", "train"]
