"""Serving a run: the batching queue, the HTTP app, batch scoring, monitoring.

Every prediction goes through ``ocula.inference.Predictor`` (the one inference path). Imports
inference, models, data and storage, never train, evaluate or tune: a server installs and
starts without the training stack, and serving on ONNX Runtime does not import torch.
"""
