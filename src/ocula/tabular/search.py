"""The candidates within a time budget: each model with its defaults, then the best ones tuned
(``ocula.tune``, TPE), then a greedy (Caruana) ensemble on out-of-fold predictions.

Every score is k-fold cross-validated on the same folds. Time is checked after every fold: a
candidate whose remaining folds would overrun the search deadline is dropped, and the search
returns the best so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ocula.errors import first_line
from ocula.tabular import pipeline
from ocula.tabular.candidates import Candidate
from ocula.tune import Stop, StudyConfig, Trial, parse_space, run_study

TUNED = 3  # how many of the best model families are tuned
FIRST = 4  # candidates always tried with their defaults (time allowing)
ENSEMBLE_POOL, ENSEMBLE_ROUNDS = 8, 25


class OutOfTime(Exception):
    """The remaining folds of a candidate would run past the deadline."""


@dataclass
class Result:
    """One leaderboard row: a single model or the ensemble, with its out-of-fold predictions."""

    name: str
    members: list[dict[str, Any]]
    oof: np.ndarray = field(repr=False)
    fold_scores: list[float]
    fit_seconds: float  # all folds
    predict_seconds: float  # per 1,000 rows
    weights: list[float] = field(default_factory=lambda: [1.0])

    @property
    def score(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))

    def row(self, metric: str) -> dict[str, Any]:
        return {"model": self.name, metric: round(self.score, 5), "std": round(self.std, 5),
                "fit_seconds": round(self.fit_seconds, 2), "predict_seconds_per_1000": round(self.predict_seconds, 3),
                "members": [{"candidate": m["candidate"], "weight": round(w / sum(self.weights), 4),
                             "params": m["params"]} for m, w in zip(self.members, self.weights)]}


class Search:
    """Cross-validated evaluation of spec members against a deadline; ``results`` grows."""

    def __init__(self, spec: dict[str, Any], X: Any, y: np.ndarray, *, deadline: float, threads: int,
                 announce: Callable[[str], None], fold_progress: Callable[[str, int], Any]) -> None:
        self.spec, self.X, self.y, self.deadline, self.threads = spec, X, y, deadline, threads
        self.greater = spec["greater_is_better"]
        self.announce, self.fold_progress = announce, fold_progress
        self.results: list[Result] = []
        self.skipped: dict[str, str] = {}

    def better(self, a: float, b: float) -> bool:
        return a > b if self.greater else a < b

    def best(self) -> Result | None:
        best = None
        for result in self.results:
            if best is None or self.better(result.score, best.score):
                best = result
        return best

    def evaluate(self, candidate: Candidate, params: dict[str, Any], name: str) -> Result:
        """Cross-validate one configuration; raises OutOfTime when it would overrun, except for
        the first one: a run always ends with a model, even one that took longer than its budget."""
        timed = bool(self.results)
        if timed and time.time() >= self.deadline:
            raise OutOfTime(name)
        member = candidate.member(self.spec["kind"], params, threads=self.threads, seed=self.spec["seed"])
        folds = self.spec["folds"]
        seconds = {"fit": 0.0, "predict": 0.0}
        with self.fold_progress(f"fitting {name}", folds) as advance:
            def after_fold(i: int, fit: float, predict: float) -> None:
                seconds["fit"] += fit
                seconds["predict"] += predict
                advance(1)
                left = folds - i - 1
                if timed and left and time.time() + (seconds["fit"] + seconds["predict"]) / (i + 1) * left > self.deadline:
                    raise OutOfTime(name)

            oof = pipeline.cross_val_predict(self.spec, self.X, self.y, member, after_fold)
        result = Result(name, [member], oof, pipeline.fold_scores(self.spec, self.y, oof), seconds["fit"],
                        seconds["predict"] / len(self.y) * 1000)
        self.results.append(result)
        self.announce(f"{name:<24} {self.spec['metric']} {result.score:.4f} ± {result.std:.4f}   "
                      f"fit {result.fit_seconds:.1f} s ({folds} folds)")
        return result

    def defaults(self, candidates: list[Candidate], *, until: float) -> None:
        """Every candidate once with its defaults, in the order given; after the first ``FIRST``,
        only while it is before ``until`` (the rest of the time goes to tuning the best)."""
        for index, candidate in enumerate(candidates):
            if index >= FIRST and time.time() >= until:
                self.skipped[candidate.name] = "not tried: the time went to tuning the best"
                self.announce(f"{candidate.name:<24} not tried: the time goes to tuning the best models")
                continue
            try:
                self.evaluate(candidate, {}, candidate.name)
            except OutOfTime:
                self.skipped[candidate.name] = "out of time"
                self.announce(f"{candidate.name:<24} skipped: its folds would run past the search's time")
            except Exception as error:  # noqa: BLE001 - one model failing must not end the search
                self.skipped[candidate.name] = f"{type(error).__name__}: {first_line(error, 200)}"
                self.announce(f"{candidate.name:<24} failed: {self.skipped[candidate.name]}")

    def tune(self, candidates: list[Candidate], directory: Path) -> None:
        """The best ``TUNED`` model families, each tuned with TPE for its share of the time left."""
        ranked = sorted((r for r in self.results if r.members[0]["candidate"] in {c.name for c in candidates}),
                        key=lambda r: r.score, reverse=self.greater)
        chosen = [c for r in ranked for c in candidates if c.name == r.members[0]["candidate"] and c.space][:TUNED]
        for index, candidate in enumerate(chosen):
            left = self.deadline - time.time()
            if left <= 1:
                break
            space = candidate.space_for(self.spec["kind"])
            config = StudyConfig(name=candidate.name, directory=directory / candidate.name, strategy="bayesian",
                                 direction="maximize" if self.greater else "minimize",
                                 budget_seconds=left / (len(chosen) - index), seed=self.spec["seed"])

            def objective(trial: Trial, candidate: Candidate = candidate) -> float:
                try:
                    return self.evaluate(candidate, trial.params, f"{candidate.name} #{trial.number}").score
                except OutOfTime:
                    raise Stop("out of time") from None

            run_study(config, parse_space(space), objective)

    def ensemble(self) -> Result | None:
        """Caruana's greedy ensemble selection with replacement over the best results' out-of-fold
        predictions; None when no blend beats its best member."""
        pool = sorted(self.results, key=lambda r: r.score, reverse=self.greater)[:ENSEMBLE_POOL]
        if len(pool) < 2:
            return None
        counts = np.zeros(len(pool))
        blended = None
        for round_ in range(ENSEMBLE_ROUNDS):
            trials = [r.oof if blended is None else (blended * round_ + r.oof) / (round_ + 1) for r in pool]
            scores = [pipeline.score(self.spec["metric"], self.y, t, self.spec["kind"]) for t in trials]
            pick = int(np.argmax(scores) if self.greater else np.argmin(scores))
            counts[pick] += 1
            blended = trials[pick]
        used = [i for i in range(len(pool)) if counts[i]]
        if len(used) < 2:
            return None
        members = [pool[i] for i in used]
        result = Result("ensemble", [m.members[0] for m in members], blended,
                        pipeline.fold_scores(self.spec, self.y, blended), sum(m.fit_seconds for m in members),
                        sum(m.predict_seconds for m in members), weights=[float(counts[i]) for i in used])
        if not self.better(result.score, pool[0].score):
            return None
        self.results.append(result)
        self.announce(f"{'ensemble':<24} {self.spec['metric']} {result.score:.4f} ± {result.std:.4f}   "
                      f"{len(used)} models, weights {', '.join(f'{int(counts[i])}' for i in used)}")
        return result

    def leaderboard(self) -> list[dict[str, Any]]:
        ranked = sorted(self.results, key=lambda r: r.score, reverse=self.greater)
        return [r.row(self.spec["metric"]) for r in ranked]


THRESHOLD_METRICS = ("f1", "balanced_accuracy")


def calibrate(spec: dict[str, Any], y: np.ndarray, oof: np.ndarray) -> float | None:
    """For a binary problem scored by F1 or balanced accuracy: the threshold on class 1's
    probability that scores best on the out-of-fold predictions (as AutoGluon's decision-threshold
    calibration); None for other problems, or when 0.5 does as well."""
    if spec["kind"] != "binary" or spec["metric"] not in THRESHOLD_METRICS:
        return None
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    scores = [pipeline.score(spec["metric"], y, oof, "binary", float(t)) for t in grid]
    best = int(np.argmax(scores))
    return float(grid[best]) if scores[best] > pipeline.score(spec["metric"], y, oof, "binary") else None
