"""The training job: ``train(...)`` returns a ``Run``."""

from ocula.train.job import train
from ocula.train.run import Run

__all__ = ["Run", "train"]
