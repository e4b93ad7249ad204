"""Serving a run: ONNX export now; the runner, batcher and HTTP app build on it (issue 4).

Imports models, data and storage, never train or tune: a server installs and starts without
the training stack.
"""

from ocula.serve.export import FORMATS, Export, export

__all__ = ["FORMATS", "Export", "export"]
