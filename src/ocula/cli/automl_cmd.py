"""``ocula automl``: tabular AutoML (what SageMaker Autopilot does) in one command."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

Opt = typer.Option
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def automl(
    data: Annotated[str, typer.Argument(help="A CSV (any of , ; tab |) or Parquet table with a header row.")],
    target: Annotated[str, Opt("--target", "-t", help="The column to predict.")],
    budget: Annotated[str, Opt(help="Wall time for the whole run, e.g. 60s, 5m: 75% searches, the rest refits and reports.")] = "5m",
    metric: Annotated[Optional[str], Opt(help="accuracy, balanced_accuracy, f1, auc, log_loss (classification); rmse, mae, r2 (regression). Default: f1 binary, accuracy multiclass, rmse regression.")] = None,
    problem_type: Annotated[Optional[str], Opt(help="binary, multiclass or regression; default inferred from the target (the evidence is printed).")] = None,
    folds: Annotated[int, Opt(help="Cross-validation folds (stratified for classification).")] = 5,
    models: Annotated[Optional[str], Opt(help="Comma-separated subset of: lightgbm, linear, random_forest, extra_trees, xgboost, catboost, knn, mlp.")] = None,
    keep: Annotated[Optional[list[str]], Opt(help="Use this column even if the data report flags it (id-like, leaking). Repeatable.")] = None,
    seed: Annotated[int, Opt(help="Seed of the folds, the models and the tuner.")] = 0,
    out: Annotated[Optional[str], Opt(help="Write the run directory exactly here (default runs/<run-id>).")] = None,
    runs_root: Annotated[str, Opt(help="Folder of runs and their index.")] = "runs",
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Print only the run directory.")] = False,
) -> None:
    """Find the best model for TARGET within --budget: data report, candidates, tuning, ensemble.

    Writes a run that `ocula serve` serves: leaderboard and quality report (report.html), data report
    (data_report.html), the model with its feature schema, and candidate.py, which rebuilds the best
    model with scikit-learn alone. The last line printed is the run directory.
    """
    from ocula.tabular.job import automl as run_automl

    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    result = run_automl(data, target=target, budget=budget, metric=metric, problem_type=problem_type, folds=folds,
                        models=names, keep=tuple(keep or ()), seed=seed, out=out, runs_root=runs_root, quiet=quiet)
    if not quiet:
        metric_name = result.metrics["problem"]["metric"]
        table = Table(title=f"leaderboard ({result.metrics['folds']}-fold CV {metric_name})")
        for header in ("model", metric_name, "± std", "fit s", "predict s/1k rows"):
            table.add_column(header)
        for row in result.metrics["leaderboard"][:15]:
            table.add_row(row["model"], f"{row[metric_name]:.4f}", f"{row['std']:.4f}", str(row["fit_seconds"]),
                          str(row["predict_seconds_per_1000"]))
        console.print(table)
        print(f"reports: {result.path / 'report.html'}, {result.path / 'data_report.html'}; "
              f"script: {result.path / 'candidate.py'}")
    print(result.path)
