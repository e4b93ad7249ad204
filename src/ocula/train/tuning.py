"""``ocula tune``: the image-classification objective over ocula's own training, on ``ocula.tune``.

Each trial is a normal ``ocula train`` run in ``<study>/trials/<number>``; it reports
``validation:accuracy`` after every epoch (so ``hyperband`` can stop it early), and its best
validation accuracy is the objective. The best trial is a run that ``ocula evaluate`` and
``ocula serve`` accept as it is; ``<study>/best`` names it.
"""

from __future__ import annotations

import functools
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ocula.config import TrainConfig, parse_duration
from ocula.data import load_source
from ocula.errors import ConfigError
from ocula.storage import write_json
from ocula.tune import Param, Stop, StudyConfig, Trial, counted, load_space, parse_space, run_study
from ocula.tune.study import parent_study
from ocula.tune.study import settings as study_settings
from ocula.tune.study import threads_per_job

METRIC = "validation:accuracy"
END_MARGIN = 0.15  # of a trial's time, for model set-up and the end-of-run report outside --budget
MIN_TRIAL_SECONDS = 30

DEFAULT_SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 3.0e-4, "high": 1.0e-2, "log": True},
    "mode": ["head", "finetune"],
    "augment": ["crop", "crop_color", "phone"],
    "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    "weight_decay": {"type": "float", "low": 1.0e-4, "high": 0.1, "log": True},
    "image_size": [192, 224],
    "batch_size": [16, 32],
}
# What a trial may vary: every training option but where the data and the run live.
TUNABLE = {f.name for f in fields(TrainConfig)} - {"data", "val", "out", "runs_root", "cache_dir", "threads",
                                                   "budget_seconds", "label_level"}


@dataclass
class TuneResult:
    directory: Path
    study: Any
    leaderboard: list[dict[str, Any]]
    best_run: Path | None


def space_from(path: str | None) -> dict[str, Param]:
    return load_space(path, allowed=TUNABLE) if path else parse_space(DEFAULT_SPACE, allowed=TUNABLE)


def objective(trial: Trial, *, data: str, directory: str, options: dict[str, Any], threads: int) -> float:
    """One training run with the trial's values; its best validation accuracy.

    Under a budget the run trains for the trial's share of the time left (``Trial.seconds``),
    less a margin for the run's start and end-of-run report."""
    from ocula.train.job import train

    seconds = None if trial.seconds is None else trial.seconds * (1 - END_MARGIN)
    if seconds is not None and seconds < MIN_TRIAL_SECONDS:
        raise Stop(f"{seconds:.0f} s left for this trial: too little to train")

    out = Path(directory) / "trials" / f"{trial.number:03d}"
    shutil.rmtree(out, ignore_errors=True)  # a trial number is never reused; a leftover is debris
    trial.note("run", str(out))
    settings = {**options, **trial.params, "threads": threads}
    if seconds is not None:  # the epochs become a cap; the budget picks what fits
        settings["budget_seconds"] = seconds
    run = train(data, out=str(out), runs_root=str(Path(directory) / "trials"), quiet=True,
                on_epoch=lambda record: trial.report(int(record["epoch"]), float(record[METRIC])), **settings)
    trial.note("epochs", len(run.metrics.get("epochs", [])))
    return float(run.best[METRIC])


def tune(data: str | None, *, strategy: str = "hyperband", trials: int | None = None, budget: str | None = None,
         space: str | None = None, study: str | None = None, out: str | None = None, jobs: int = 1,
         seed: int | None = 0, storage: str | None = None, join: bool = False, max_epochs: int = 10,
         progress: Any = None, warm_start: str | None = None, **options: Any) -> TuneResult:
    """Tune ocula's training on ``data``; ``options`` fix training settings for every trial.

    ``join`` adds this machine's workers to a study another ``ocula tune`` started in
    ``storage``: the data path, space, strategy, trial count, deadline and fixed options are
    the study's own (the data must be at the same path here).
    """
    name = study or "study"
    directory = Path(out or Path("studies") / name)
    deadline = None
    if join:
        if storage is None:
            raise ConfigError("--join needs --storage, the URL of the study's database")
        stored = study_settings(name, storage)
        params = parse_space(stored["space"], allowed=TUNABLE)
        data, options = stored["objective"]["data"], stored["objective"]["options"]
        strategy, trials, max_epochs, deadline = (stored["strategy"], stored["trials"], stored["max_steps"],
                                                  stored["deadline"])
        budget_seconds = None if deadline is None else max(1.0, deadline - time.time())
    else:
        if data is None:
            raise ConfigError("no data given", hint="pass the images to tune on, or --join a running study")
        load_source(data)  # a wrong path or layout fails here in one line, not once per trial
        params = space_from(space)
        fixed = set(options) & set(params)
        if fixed:
            raise ConfigError(f"{sorted(fixed)} are both fixed and searched",
                              hint="drop them from the space or the options")
        unknown_options = set(options) - TUNABLE
        if unknown_options:
            raise ConfigError(f"unknown training options {sorted(unknown_options)}")
        budget_seconds = parse_duration(budget)
        if "epochs" not in options and "epochs" not in params:
            options = {**options, "epochs": max_epochs}
    config = StudyConfig(name=name, directory=directory, strategy=strategy, trials=trials,
                         budget_seconds=budget_seconds, jobs=jobs, seed=seed, storage=storage, max_steps=max_epochs,
                         warm_start=parent_study(warm_start) if warm_start else None)
    if deadline is None and budget_seconds is not None:
        deadline = time.time() + budget_seconds
    work = functools.partial(objective, data=str(data), directory=str(directory), options=options,
                             threads=threads_per_job(jobs))
    began = time.time()
    result = run_study(config, params, work, join=join, deadline=deadline, progress=progress,
                       describes={"data": str(data), "options": options})
    board = leaderboard(result)
    best = _best_run(result)
    write_json(directory / "leaderboard.json", {"strategy": strategy, "metric": METRIC,
                                                 "seconds": round(time.time() - began, 1),
                                                 "best_run": str(best) if best else None, "trials": board})
    _plots(result, directory)
    if best is not None:
        (directory / "best").write_text(str(best) + "\n")
    return TuneResult(directory, result, board, best)


def leaderboard(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in counted(study):
        rows.append({"trial": t.number, "status": t.state.name.lower(), METRIC: t.value,
                     "epochs": t.user_attrs.get("epochs", t.user_attrs.get("steps")),
                     "seconds": t.user_attrs.get("seconds"), "params": t.params,
                     "error": t.user_attrs.get("error"), "run": t.user_attrs.get("run")})
    return sorted(rows, key=lambda r: (r[METRIC] is None, -(r[METRIC] or 0.0)))


def _best_run(study: Any) -> Path | None:
    complete = [t for t in counted(study) if t.value is not None and t.state.name == "COMPLETE"]
    if not complete:
        return None
    path = Path(max(complete, key=lambda t: t.value).user_attrs["run"])
    return path if (path / "model" / "weights.pt").exists() else None


def _plots(study: Any, directory: Path) -> None:
    """history.png (metric per trial and best so far) and importances.json/png when computable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    done = sorted((t for t in counted(study) if t.value is not None), key=lambda t: t.number)
    if not done:
        return
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.scatter([t.number for t in done], [t.value for t in done], s=18, label="trial")
    best, running = [], -float("inf")
    for t in done:
        running = max(running, t.value)
        best.append(running)
    axis.step([t.number for t in done], best, where="post", color="C1", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(METRIC)
    axis.legend()
    figure.tight_layout()
    figure.savefig(directory / "history.png", dpi=110)
    plt.close(figure)
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # too few finished trials, or a single value per parameter
        return
    write_json(directory / "importances.json", importances)
    figure, axis = plt.subplots(figsize=(6, 0.4 * len(importances) + 1))
    names = list(importances)[::-1]
    axis.barh(names, [importances[n] for n in names])
    axis.set_xlabel("importance (fANOVA)")
    figure.tight_layout()
    figure.savefig(directory / "importances.png", dpi=110)
    plt.close(figure)

