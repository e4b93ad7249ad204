"""Where and why a classifier fails: the evaluation job, and the pure functions it reports with.

``job`` (``ocula.evaluate.job.evaluate``, public as ``ocula.evaluate``) is the only module here
that sees a model or an image file: it scores images through ``ocula.inference.Predictor`` and
hands labels and probabilities to the others (``metrics``, ``diagnose``, ``robustness``,
``plots``, ``report``), which take arrays and plain dicts only.
"""

from ocula.evaluate.diagnose import Finding, diagnose
from ocula.evaluate.metrics import accuracy, log_loss, summarize, top_k_accuracy
from ocula.evaluate.report import GalleryItem, render_report
from ocula.evaluate.robustness import shift_summary

__all__ = [
    "Finding",
    "GalleryItem",
    "accuracy",
    "diagnose",
    "log_loss",
    "render_report",
    "shift_summary",
    "summarize",
    "top_k_accuracy",
]
