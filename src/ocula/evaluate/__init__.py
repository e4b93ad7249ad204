"""Metrics as pure functions of arrays; diagnosis and reports build on them."""

from ocula.evaluate.metrics import accuracy, log_loss, top_k_accuracy

__all__ = ["accuracy", "log_loss", "top_k_accuracy"]
