"""``ocula serve``: the run as a SageMaker-compatible HTTP endpoint."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

Opt = typer.Option
err = Console(stderr=True, highlight=False)


def serve(
    run: Annotated[str, typer.Argument(help="A run directory written by `ocula train`.")],
    port: Annotated[int, Opt(help="TCP port (SageMaker's is 8080).")] = 8080,
    host: Annotated[str, Opt(help="Interface to bind; 0.0.0.0 exposes the endpoint to the network.")] = "127.0.0.1",
    workers: Annotated[int, Opt(help="Server processes; each gets cores/workers inference threads.")] = 1,
    max_batch: Annotated[int, Opt(help="Most images per model call (dynamic batching).")] = 16,
    max_delay_ms: Annotated[float, Opt(help="Longest wait for a batch to fill, in milliseconds.")] = 5.0,
    backend: Annotated[str, Opt(help="auto (ONNX Runtime, PyTorch if the export fails), onnx or torch.")] = "auto",
    int8: Annotated[bool, Opt("--int8", help="Serve model.int8.onnx (make it with `ocula export RUN --int8`).")] = False,
    capture_dir: Annotated[Optional[str], Opt(help="Record predictions and image statistics here, for `ocula monitor`.")] = None,
    capture_percent: Annotated[float, Opt(help="Percentage of requests captured.")] = 100.0,
    max_body_mb: Annotated[float, Opt(help="Largest request body in MB (SageMaker: 6).")] = 6.0,
    max_megapixels: Annotated[float, Opt(help="Largest image, in megapixels, read from its header before decoding.")] = 40.0,
    threads: Annotated[Optional[int], Opt(help="Inference threads per worker. Default cores / workers.")] = None,
    min_confidence: Annotated[Optional[float], Opt(
        help="Answer \"predicted_label\": null, \"rejected\": true (verbose JSON; header X-Rejected) for an image "
             "whose top probability is below this, or that is unlike every training photo (blank, noise; 0 rejects only "
             "those); a request's ?min_confidence= overrides it.")] = None,
    explain: Annotated[bool, Opt("--explain", help="Allow ?explain=true on /invocations: the answer then carries "
                                 "a Grad-CAM heatmap of the top class over each image (base64 PNG). Loads the run's "
                                 "PyTorch weights beside the serving engine; each explained image costs about one more "
                                 "forward pass.")] = False,
    access_log: Annotated[bool, Opt("--access-log", help="Log every request.")] = False,
) -> None:
    """Serve RUN over HTTP: GET /ping, POST /invocations (images or JSON), /docs, /metrics."""
    from ocula.serve.server import Options, serve as run_server

    options = Options(run, backend=backend, int8=int8, max_batch=max_batch, max_delay_ms=max_delay_ms,
                      max_body_mb=max_body_mb, max_megapixels=max_megapixels, capture_dir=capture_dir,
                      capture_percent=capture_percent, threads=threads, min_confidence=min_confidence,
                      explain=explain)
    run_server(options, host=host, port=port, workers=workers, access_log=access_log,
               log=lambda message: err.print(message, highlight=False, soft_wrap=True))
