"""The one inference path, for every command: a run's model as ``Predictor``.

``Predictor.from_run(run)`` reads the card and picks an engine (ONNX Runtime by default,
PyTorch for a model not exported yet); ``prepare``/``crop`` decode one image as validation
did; ``stream`` reads, decodes and scores files in bounded batches; ``export`` and
``quantize`` make the ONNX files the engine runs. Importing this package loads neither torch
nor ONNX Runtime: each engine loads its runtime when it is built.
"""

from ocula.inference.engines import OnnxEngine, TorchEngine, cpu_count
from ocula.inference.predictor import (BACKENDS, MAX_PIXELS, Batch, Gate, Prediction, Predictor, Prepared,
                                      check_min_confidence, multilabel_record, prediction_record)

__all__ = ["BACKENDS", "MAX_PIXELS", "Batch", "Gate", "OnnxEngine", "Prediction", "Predictor", "Prepared", "TorchEngine",
           "check_min_confidence", "cpu_count", "multilabel_record", "prediction_record"]
