"""``ocula tune``: hyperparameter search over ocula's training, on one machine or many."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

Opt = typer.Option
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def tune(
    data: Annotated[Optional[str], typer.Argument(help="Images in any layout `ocula train` reads (not needed with --join).")] = None,
    strategy: Annotated[str, Opt(help="grid, random, bayesian (TPE) or hyperband (TPE + early stopping of weak trials).")] = "hyperband",
    trials: Annotated[Optional[int], Opt(help="Trials in all, across workers.")] = None,
    budget: Annotated[Optional[str], Opt(help="Wall time for the study, e.g. 20m; each trial gets its share.")] = None,
    space: Annotated[Optional[str], Opt(help="YAML search space; default: lr, mode, augment, label_smoothing, weight_decay, image_size, batch_size.")] = None,
    study: Annotated[str, Opt(help="Study name (also the folder under studies/).")] = "study",
    out: Annotated[Optional[str], Opt(help="Study folder. Default studies/<study>.")] = None,
    jobs: Annotated[int, Opt(help="Parallel trials on this machine (processes; cores are split between them).")] = 1,
    seed: Annotated[int, Opt(help="Seed of the sampler.")] = 0,
    storage: Annotated[Optional[str], Opt(help="Study storage URL, e.g. postgresql://user:pw@host/db. Default SQLite in the study folder.")] = None,
    join: Annotated[bool, Opt("--join", help="Join the study --study in --storage as more workers; its data, space and settings are the study's.")] = False,
    warm_start: Annotated[Optional[str], Opt(help="Start from an earlier study: its folder, or URL#STUDY. Its finished trials inform the sampler and do not count.")] = None,
    max_epochs: Annotated[int, Opt(help="Epochs per trial (hyperband's largest resource).")] = 10,
    model: Annotated[Optional[str], Opt(help="Fixed for every trial: architecture.")] = None,
    pretrained: Annotated[Optional[str], Opt(help="Fixed for every trial: pretrained weights.")] = None,
    mode: Annotated[Optional[str], Opt(help="Fixed for every trial: transfer mode (then not searched).")] = None,
) -> None:
    """Search training settings; prints the leaderboard; the last line is the best trial's run directory."""
    from ocula.errors import UsageError
    from ocula.train.tuning import METRIC, tune as run_tune

    fixed = {k: v for k, v in {"model": model, "pretrained": pretrained, "mode": mode}.items() if v is not None}
    err = Console(stderr=True, highlight=False)

    def progress(trial, s) -> None:
        value = "" if trial.value is None else f" {trial.value:.4f}"
        best = "-" if s["best"] is None else f"{s['best']:.4f}"
        err.print(f"trial {trial.number} {trial.state.name.lower()}{value} | done {s['done']}"
                  f"{'/' + str(trials) if trials else ''}, running {s['running']}, pruned {s['pruned']}, "
                  f"failed {s['failed']}, best {best}", soft_wrap=True)

    result = run_tune(data, strategy=strategy, trials=trials, budget=budget, space=space, study=study, out=out,
                      jobs=jobs, seed=seed, storage=storage, join=join, max_epochs=max_epochs, progress=progress,
                      warm_start=warm_start, **fixed)
    table = Table(title=f"{len(result.leaderboard)} trials, {METRIC}")
    for header in ("trial", "status", METRIC, "epochs", "seconds", "params"):
        table.add_column(header, overflow="fold")
    for row in result.leaderboard:
        value = "" if row[METRIC] is None else f"{row[METRIC]:.4f}"
        table.add_row(str(row["trial"]), row["status"] + (f" ({row['error']})" if row["error"] else ""), value,
                      str(row["epochs"] or ""), str(row["seconds"] or ""), json.dumps(row["params"]))
    console.print(table)
    print(f"study folder: {result.directory} (leaderboard.json, history.png, importances.png)")
    if result.best_run is None:
        raise UsageError("no trial finished", hint="see the errors above")
    print(result.best_run)
