"""``ocula sagemaker train|serve``: the SageMaker container's two entry points."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Run as a SageMaker training job or endpoint (the container's `train` and `serve`).",
                  no_args_is_help=True)
err = Console(stderr=True, highlight=False)
ROOT_HELP = "The container root (SageMaker: /opt/ml; default $OCULA_SAGEMAKER_ROOT or /opt/ml)."


@app.command()
def train(root: Annotated[Optional[str], typer.Option(help=ROOT_HELP)] = None) -> None:
    """Train from ROOT/input (hyperparameters.json, data channels) into ROOT/model; resume from
    ROOT/checkpoints after a spot interruption; on failure write ROOT/output/failure and exit 1."""
    from ocula.sagemaker import train as run_job

    raise typer.Exit(run_job(root))


@app.command()
def serve(
    root: Annotated[Optional[str], typer.Option(help=ROOT_HELP)] = None,
    host: Annotated[str, typer.Option(help="Interface to bind. In a container SageMaker's proxy reaches it on "
                                           "0.0.0.0; use 127.0.0.1 to try it on a laptop.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="TCP port (SageMaker's is 8080).")] = 8080,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Serve ROOT/model (an ocula training job's model artefact): GET /ping, POST /invocations."""
    from ocula.sagemaker import serve as run_server

    run_server(root, host=host, port=port, workers=workers,
               say=lambda message: err.print(message, soft_wrap=True))
