"""``ocula serve``: load the run once, then run the app on uvicorn (one or several workers).

With ``workers > 1`` uvicorn starts each worker from an import string, so the options travel
in the ``OCULA_SERVE`` environment variable and every worker rebuilds its app with
``from_environment``. The parent loads the model first: a broken run fails before any port is
opened, and the ONNX export happens once rather than once per worker.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from ocula.errors import UsageError
from ocula.serve.app import Settings, create_app
from ocula.serve.capture import Capture
from ocula.inference import MAX_PIXELS, Predictor, check_min_confidence, cpu_count
from ocula.storage import RunDir

ENV = "OCULA_SERVE"


@dataclass
class Options:
    run: str
    backend: str = "auto"
    int8: bool = False
    max_batch: int = 16
    max_delay_ms: float = 5.0
    max_body_mb: float = 6.0
    max_megapixels: float = MAX_PIXELS / 1e6
    capture_dir: str | None = None
    capture_percent: float = 100.0
    threads: int | None = None  # inference threads per worker; default cores / workers
    min_confidence: float | None = None  # reject images whose top probability is below this
    explain: bool = False  # load the PyTorch model too, for ?explain=true

    def check(self) -> None:
        if self.max_batch < 1:
            raise UsageError(f"--max-batch {self.max_batch} must be at least 1")
        if self.max_delay_ms < 0:
            raise UsageError(f"--max-delay-ms {self.max_delay_ms:g} must not be negative")
        if self.max_body_mb <= 0 or self.max_megapixels <= 0:
            raise UsageError("--max-body-mb and --max-megapixels must be positive")
        check_min_confidence(self.min_confidence)


def build_app(options: Options, *, log=None):
    options.check()
    tabular = _tabular_model(options.run)
    if tabular is not None:
        from ocula.serve.tabular import create_tabular_app

        if options.min_confidence is not None or options.explain:
            raise UsageError("--min-confidence and --explain apply to image runs; this is a table run")
        return create_tabular_app(tabular, Settings(max_body_bytes=int(options.max_body_mb * 2**20)))
    predictor = Predictor.from_run(options.run, backend=options.backend, int8=options.int8, threads=options.threads,
                                   max_pixels=int(options.max_megapixels * 1e6), log=log)
    explainer = None
    if options.explain:
        from ocula.inference.explain import Explainer

        explainer = Explainer.from_engine(predictor.engine, predictor.card) or Explainer.from_run(options.run)
    capture = Capture(options.capture_dir, options.capture_percent) if options.capture_dir else None
    settings = Settings(max_batch=options.max_batch, max_delay_ms=options.max_delay_ms,
                        max_body_bytes=int(options.max_body_mb * 2**20), capture=capture,
                        min_confidence=options.min_confidence, explainer=explainer)
    return create_app(predictor, settings)


def _tabular_model(run: str):
    """The run's tabular model when it is an ``ocula automl`` run, else None."""
    run_dir = RunDir.open(run, need=("card",))
    if not run_dir.is_tabular():
        return None
    from ocula.tabular.model import TabularModel

    return TabularModel.load(run_dir.model_dir)


def from_environment():
    """uvicorn's app factory in each worker process."""
    return build_app(Options(**json.loads(os.environ[ENV])))


def serve(options: Options, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          access_log: bool = False, log=None) -> None:
    import uvicorn

    if workers < 1:
        raise UsageError(f"--workers {workers} must be at least 1")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port} is not a TCP port", hint="use 1-65535, e.g. 8080")
    if options.threads is None:
        options.threads = max(1, cpu_count() // workers)
    app = build_app(options, log=log)  # fails here, in one line, on a bad run
    say = log or print
    model = app.state.predictor.describe() if hasattr(app.state, "predictor") else app.state.model.card["best"]
    say(f"serving {options.run} with {model} on http://{host}:{port} "
        f"(POST /invocations, GET /ping, /docs, /metrics); Ctrl-C stops")
    config: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": access_log,
                              "timeout_graceful_shutdown": 5}
    if workers == 1:
        uvicorn.run(app, **config)
        return
    os.environ[ENV] = json.dumps(asdict(options))
    uvicorn.run("ocula.serve.server:from_environment", factory=True, workers=workers, **config)
