"""``ocula runs list`` and ``ocula runs show``: the run index."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ocula.errors import UsageError

app = typer.Typer(help="List and inspect training runs.", no_args_is_help=True)
# Piped output (scripts, CI logs) gets a wide table instead of an 80-column one.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
RootOpt = typer.Option(help="Folder of runs holding the index (index.sqlite).")


@app.command("list")
def list_runs(root: Annotated[str, RootOpt] = "runs", limit: int = 50) -> None:
    """The most recent runs, newest first. Status: running, completed, interrupted (Ctrl-C), stopped
    (an error or a tuner's pruning ended it), or dead (the process ended without finishing: killed,
    crashed, machine restarted)."""
    from ocula.storage import RunIndex

    table = Table()
    table.add_column("id", no_wrap=True)
    for column in ("created", "status", "model", "mode", "augment", "classes", "epochs", "val acc", "wall s"):
        table.add_column(column, overflow="fold")
    rows = RunIndex(root).list(limit)
    for row in rows:
        acc = row["val_accuracy"]
        table.add_row(
            row["id"], time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created"])), row["status"],
            row["model"] or "", row["mode"] or "", row["augment"] or "", str(row["classes"] or ""),
            str(row["epochs"] or ""), f"{acc:.4f}" if acc is not None else "",
            f"{row['wall_seconds']:.0f}" if row["wall_seconds"] else "",
        )
    console.print(table)
    if any(row["status"] == "dead" for row in rows):
        console.print("dead: the process ended without finishing (killed or crashed); "
                      "`ocula train --resume RUN` continues an image run from its last epoch")


@app.command()
def show(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
         root: Annotated[str, RootOpt] = "runs") -> None:
    """Everything the index and the run directory know about one run."""
    from ocula.storage import RunDir, RunIndex, read_json

    row = RunIndex(root).get(run_id)
    if row is None:
        raise UsageError(f"no run {run_id!r} in {root}", hint="see `ocula runs list`")
    console.print_json(json.dumps(row, default=str))
    run = RunDir(Path(row["path"]))
    if run.metrics.exists():
        metrics = read_json(run.metrics)
        console.print_json(json.dumps({k: v for k, v in metrics.items() if k != "epochs"}))
