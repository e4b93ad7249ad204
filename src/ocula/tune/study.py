"""A study over any objective on Optuna: strategies, trial counts, budget, resume, workers.

``run_study(objective, params, ...)`` calls ``objective(trial)`` with a ``Trial`` that holds the
drawn ``params`` and a ``report(step, value)`` for per-epoch metrics (``hyperband`` prunes on
them by raising ``Pruned``). The study lives in SQLite in the study folder unless a storage
URL (PostgreSQL) is given; re-running the same command resumes it: finished trials are kept,
a trial that was running when the study was stopped runs again. Several worker processes
(``jobs``) share the storage, and ``--trials N`` means N trials in all, across workers.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocula.errors import ConfigError, UsageError, first_line, mask_url, unknown
from ocula.tune.space import Param, suggest

STRATEGIES = ("grid", "random", "bayesian", "hyperband")
DIRECTIONS = ("maximize", "minimize")
INTERRUPTED = "interrupted"  # user attribute of a trial stopped by Ctrl-C: queued again, not counted
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120
WARM = "warm_start_from"  # user attribute of a trial copied from an earlier study
SETTINGS = "ocula"  # study user attribute: space, strategy, trials, deadline, objective settings
SETTINGS_WAIT = 10  # seconds a joiner waits for a just-created study's settings


class Pruned(Exception):
    """Raised by ``Trial.report`` when the strategy stops a weak trial early."""


class Stop(Exception):
    """Raised by an objective that should not run at all (e.g. too little time is left): the
    trial is dropped, not counted, and this worker stops."""


@dataclass
class Trial:
    """What an objective sees: the drawn ``params``, and under a budget ``seconds``, this
    trial's fair share of the time left (time saved by pruned or quick trials goes to later ones)."""

    number: int
    params: dict[str, Any]
    _optuna: Any = field(repr=False, default=None)
    _prunes: bool = False
    seconds: float | None = None

    def report(self, step: int, value: float) -> None:
        """The objective's metric after ``step`` (an epoch); raises ``Pruned`` to stop early."""
        self._optuna.report(value, step)
        self._optuna.set_user_attr("steps", step)
        if self._prunes and self._optuna.should_prune():
            raise Pruned(f"pruned after step {step} at {value:.4f}")

    def note(self, key: str, value: Any) -> None:
        """Keep something about the trial (e.g. its run directory) in the study."""
        self._optuna.set_user_attr(key, value)


@dataclass(frozen=True)
class StudyConfig:
    name: str
    directory: Path
    strategy: str = "bayesian"
    direction: str = "maximize"
    trials: int | None = None
    budget_seconds: float | None = None
    jobs: int = 1
    seed: int | None = 0
    storage: str | None = None
    max_steps: int = 10  # hyperband's largest resource (epochs)
    warm_start: tuple[str, str] | None = None  # (storage URL, study name) of an earlier study

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise unknown("strategy", self.strategy, STRATEGIES, ConfigError)
        if self.direction not in DIRECTIONS:
            raise unknown("direction", self.direction, DIRECTIONS, ConfigError)
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials {self.trials} must be at least 1")
        if self.jobs < 1:
            raise ConfigError(f"--jobs {self.jobs} must be at least 1")
        if self.trials is None and self.budget_seconds is None and self.strategy != "grid":
            raise ConfigError("a study needs --trials or --budget (or --strategy grid, which ends by itself)")

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.directory / 'study.db').resolve()}"


def create(config: StudyConfig, params: Mapping[str, Param], *, join: bool = False, worker: int = 0) -> Any:
    """The Optuna study (created, or loaded to resume or join).

    Workers that die without a word (a killed process, a lost machine) stop sending
    heartbeats; after ``GRACE_SECONDS`` Optuna fails their trial and queues it again.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in use
    config.directory.mkdir(parents=True, exist_ok=True)
    try:
        storage = _rdb(config.storage_url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                       heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
        if join:
            study = optuna.load_study(study_name=config.name, storage=storage)
        else:
            study = optuna.create_study(study_name=config.name, storage=storage, direction=config.direction,
                                        load_if_exists=True)
    except Exception as error:  # noqa: BLE001 - unreachable database, bad URL, missing driver: one line
        raise _storage_error(error, config.name, config.storage_url) from None
    if study.direction.name.lower() != config.direction:
        raise UsageError(f"study {config.name!r} already exists with direction {study.direction.name.lower()}")
    # A seed per worker and per resume: a resumed or second worker must not redraw the same values.
    offset = len(study.get_trials(deepcopy=False)) + 7919 * worker
    study.sampler = _sampler(config, params, None if config.seed is None else config.seed + offset)
    study.pruner = _pruner(config)
    return study


def describe(study: Any, config: StudyConfig, params: Mapping[str, Param], deadline: float | None,
             objective: Mapping[str, Any] | None = None) -> None:
    """Keep in the study what a worker joining from another machine needs (``settings``)."""
    study.set_user_attr(SETTINGS, {
        "space": {name: p.to_dict() for name, p in params.items()}, "strategy": config.strategy,
        "direction": config.direction, "trials": config.trials, "max_steps": config.max_steps,
        "seed": config.seed, "deadline": deadline, "objective": dict(objective or {})})


def settings(name: str, storage: str) -> dict[str, Any]:
    """The settings the study's first command stored, for ``--join``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=_rdb(storage))
    except Exception as error:  # noqa: BLE001
        raise _storage_error(error, name, storage) from None
    for _ in range(SETTINGS_WAIT * 5):  # a study is created a moment before its settings are stored
        if SETTINGS in study.user_attrs:
            return study.user_attrs[SETTINGS]
        time.sleep(0.2)
    raise UsageError(f"study {name!r} was not created by ocula tune")


def counted(study: Any) -> list[Any]:
    """Trials that count towards --trials: not interrupted ones (they run again), not the
    failed originals of retried ones, not surplus ones a worker started after the last slot."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    trials = study.get_trials(deepcopy=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" since Optuna 2.8
        retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials} - {None}
    return [t for t in trials if not t.user_attrs.get(INTERRUPTED) and not t.user_attrs.get("surplus")
            and not t.user_attrs.get(WARM) and t.number not in retried]


def parent_study(text: str) -> tuple[str, str]:
    """``--warm-start``: an earlier study folder (its study.db) or ``URL#STUDY`` -> (url, name)."""
    import optuna

    if "://" in text:
        url, _, name = text.partition("#")
        if not name:
            raise ConfigError(f"--warm-start {text!r} names no study", hint="write URL#STUDY")
        return url, name
    database = Path(text) / "study.db"
    if not database.is_file():
        raise ConfigError(f"--warm-start {text!r} is not a study folder (no study.db)",
                          hint="give the --out folder of an earlier `ocula tune`, or URL#STUDY")
    url = f"sqlite:///{database.resolve()}"
    names = optuna.study.get_all_study_names(storage=url)
    if len(names) != 1:
        raise ConfigError(f"{database} holds {len(names)} studies", hint="write sqlite:///...#STUDY")
    return url, names[0]


def warm_start(study: Any, url: str, name: str, params: Mapping[str, Param]) -> int:
    """Copy the finished trials of an earlier study that fit this space into a new one, so the
    sampler starts from what they learned (as SageMaker's warm start). They are marked and do
    not count towards --trials. Returns how many were copied."""
    import optuna

    if study.get_trials(deepcopy=False):
        return 0  # only a new study is seeded; a resumed one has them already
    try:
        parent = optuna.load_study(study_name=name, storage=_rdb(url))
    except Exception as error:  # noqa: BLE001
        raise _storage_error(error, name, url) from None
    copied = 0
    for trial in parent.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if set(trial.params) != set(params) or not all(p.contains(trial.params[n]) for n, p in params.items()):
            continue
        study.add_trial(optuna.trial.create_trial(
            params=trial.params, distributions={n: p.distribution() for n, p in params.items()},
            value=trial.value, user_attrs={WARM: f"{name}#{trial.number}"}))
        copied += 1
    return copied


def summary(study: Any) -> dict[str, Any]:
    """Trials by state across every worker, and the best value so far."""
    trials = counted(study)
    states = [t.state.name.lower() for t in trials]
    values = [t.value for t in trials if t.value is not None and t.state.name == "COMPLETE"]
    best = (max if study.direction.name == "MAXIMIZE" else min)(values) if values else None
    return {"done": sum(s in ("complete", "pruned", "fail") for s in states), "running": states.count("running"),
            "complete": states.count("complete"), "pruned": states.count("pruned"), "failed": states.count("fail"),
            "best": best}


def optimize(config: StudyConfig, params: Mapping[str, Param], objective: Callable[[Trial], float], *,
             join: bool = False, deadline: float | None = None, worker: int = 0,
             progress: Callable[[Any, dict[str, Any]], None] | None = None) -> None:
    """Run trials in this process until the count, the deadline or the grid is reached;
    ``progress(trial, summary(study))`` after each of this process's trials."""
    import optuna

    study = create(config, params, join=join, worker=worker)
    deadline = deadline or (time.time() + config.budget_seconds if config.budget_seconds else None)
    limit = config.trials
    if config.strategy == "grid":  # a grid ends with its last combination, also on a re-run
        size = math.prod(len(p.grid_values()) for p in params.values())
        limit = size if limit is None else min(limit, size)
    if limit is not None and len(counted(study)) >= limit:
        return

    def wrapped(trial: Any) -> float:
        began = time.time()
        try:
            if limit is not None and len([t for t in counted(study) if t.number < trial.number]) >= limit:
                raise Stop("surplus: another worker took the last slot first")
            if deadline is not None and began >= deadline:
                raise Stop("budget spent")
            share = None if deadline is None else _share(study, limit, config.jobs, deadline - began)
            return objective(Trial(trial.number, suggest(trial, params), trial, config.strategy == "hyperband", share))
        except Stop as error:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise optuna.TrialPruned(str(error)) from None
        except Pruned as error:
            raise optuna.TrialPruned(str(error)) from None
        except KeyboardInterrupt:  # run these values again when the study resumes
            trial.set_user_attr(INTERRUPTED, True)
            study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
            raise
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {first_line(error)}")
            raise
        finally:
            trial.set_user_attr("seconds", round(time.time() - began, 2))

    def enough(study: Any, trial: Any) -> None:
        if progress is not None and not trial.user_attrs.get("surplus"):
            progress(trial, summary(study))
        if limit is not None and len(counted(study)) >= limit:
            study.stop()

    timeout = None if deadline is None else max(0.0, deadline - time.time())
    study.optimize(wrapped, timeout=timeout, callbacks=[enough], catch=(Exception,), gc_after_trial=True)


def _share(study: Any, limit: int | None, jobs: int, left: float) -> float:
    """A starting trial's share of the ``left`` seconds: the jobs' time spread over the trials
    not yet finished (this one and any running), never more than what is left."""
    if limit is None:
        return left
    finished = summary(study)["done"]
    return min(left, left * jobs / max(1, limit - finished))


def run_study(config: StudyConfig, params: Mapping[str, Param], objective: Callable[[Trial], float], *,
              join: bool = False, deadline: float | None = None, describes: Mapping[str, Any] | None = None,
              progress: Callable[[Any, dict[str, Any]], None] | None = None) -> Any:
    """``optimize`` in ``config.jobs`` processes (this one included); returns the study.

    ``describes`` (JSON) is kept in the study for joiners, with the space, strategy and deadline;
    a joiner passes the stored ``deadline``. ``objective`` must be picklable (a module-level function or a ``functools.partial`` of one)
    when ``jobs > 1``: workers are spawned, not forked, so that no thread pool is copied.
    """
    study = create(config, params, join=join)
    if deadline is None and config.budget_seconds:
        deadline = time.time() + config.budget_seconds
    if not join:
        describe(study, config, params, deadline, describes)
        if config.warm_start is not None:
            warm_start(study, *config.warm_start, params)
    workers = []
    base = os.getpid() if join else 0  # joiners on other machines draw their own values too
    context = multiprocessing.get_context("spawn")
    for number in range(1, config.jobs):
        worker = context.Process(target=optimize, args=(config, params, objective),
                                 kwargs={"join": True, "deadline": deadline, "worker": base + number})
        worker.start()
        workers.append(worker)
    try:
        optimize(config, params, objective, join=True, deadline=deadline, worker=base, progress=progress)
    finally:
        for worker in workers:
            worker.join()
    return study


def _sampler(config: StudyConfig, params: Mapping[str, Param], seed: int | None) -> Any:
    import optuna

    if config.strategy == "grid":
        return optuna.samplers.GridSampler({name: p.grid_values() for name, p in params.items()}, seed=seed)
    if config.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, (config.trials or 20) // 3)))


def _pruner(config: StudyConfig) -> Any:
    import optuna

    if config.strategy == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.max_steps, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _rdb(url: str, **options: Any) -> Any:
    """Optuna's SQLAlchemy storage. Workers that start together race to create its tables: the
    loser's CREATE fails on a duplicate key, and the tables exist when it tries again."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(url, **options)
        except (IntegrityError, ProgrammingError):
            time.sleep(0.2 * (attempt + 1))
    return optuna.storages.RDBStorage(url, **options)


def _storage_error(error: Exception, name: str, url: str) -> UsageError:
    if isinstance(error, KeyError):
        return UsageError(f"no study named {name!r} in {mask_url(url)}", hint="start it with `ocula tune` first, then --join it")
    hint = "pip install 'ocula[postgres]'" if "DB access module" in str(error) else None
    detail = first_line(error).replace(url, mask_url(url))  # SQLAlchemy quotes a URL it cannot parse
    return UsageError(f"cannot open the study storage {mask_url(url)}: {detail}", hint=hint)


def threads_per_job(jobs: int) -> int:
    """Cores split between parallel trials, so that they do not oversubscribe the machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // jobs)
