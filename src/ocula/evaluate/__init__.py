"""Where and why a classifier fails, from arrays: metrics, diagnosis, robustness, the report.

Nothing here sees a model, an image file or a run directory: the evaluation job
(``ocula.train.evaluation``) scores the images and hands over labels and probabilities.
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
