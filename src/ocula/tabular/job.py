"""``ocula automl``: a table and a target in, a served-ready run out, within a time budget.

    read + problem -> data report (columns left out, with reasons) -> candidates with defaults
    -> the best ones tuned -> Caruana ensemble -> refit on all rows -> importance, quality
    report, candidate.py -> run directory

The run directory holds ``config.yaml``, ``data_report.{json,html}``, ``metrics.json``
(leaderboard, best, quality, importance), ``report.html``, ``candidate.py`` and
``model/{model.skops,card.json}``, which ``ocula serve`` loads.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocula.config import parse_duration
from ocula.errors import ConfigError, DataError, unknown
from ocula.storage import RunDir, RunIndex, lease, new_run_id, read_json, write_json, write_yaml
from ocula.storage.log import RunLog
from ocula.tabular import explain, pipeline, report
from ocula.tabular.candidates import BY_NAME, CANDIDATES
from ocula.tabular.model import TabularModel
from ocula.tabular.profile import profile
from ocula.tabular.script import write_script
from ocula.tabular.search import Search, calibrate
from ocula.tabular.table import infer_problem, read_table

SEARCH_SHARE = 0.75  # of the budget; the rest refits the best on every row and writes the reports
DEFAULTS_SHARE = 0.5  # of the search: past it, the remaining model families give way to tuning


@dataclass
class TabularRun:
    path: Path
    metrics: dict[str, Any]
    _model: TabularModel | None = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> dict[str, Any]:
        return self.metrics["best"]

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> TabularRun:
        """The ``ocula automl`` run in ``path`` (its model is loaded, and checked, on first use)."""
        run = RunDir.open(path, need=("card",))
        return cls(run.path, read_json(run.metrics) if run.metrics.exists() else {})

    def predict(self, rows: Any) -> list[dict[str, Any]]:
        """Autopilot's keys for each row of a DataFrame (or a CSV/Parquet path): the answers
        `ocula serve` gives. A model file ocula did not write is refused before it is built."""
        if self._model is None:
            self._model = TabularModel.load(self.path / "model")
        return self._model.answers(read_table(rows) if isinstance(rows, str | os.PathLike) else rows)


def automl(data: str, *, target: str, budget: str | float | None = "5m", metric: str | None = None,
           problem_type: str | None = None, folds: int = 5, seed: int = 0, models: list[str] | None = None,
           keep: tuple[str, ...] = (), out: str | None = None, runs_root: str = "runs", threads: int | None = None,
           quiet: bool = False) -> TabularRun:
    """Fit the best pipeline for ``target`` in the table ``data`` within ``budget``."""
    began = time.time()
    budget_seconds = parse_duration(budget) or 300.0
    if folds < 2:
        raise ConfigError(f"--folds {folds} must be at least 2")
    for name in models or []:
        if name not in BY_NAME:
            raise unknown("model", name, BY_NAME, ConfigError)
    for name in keep:
        if name == target:
            raise ConfigError(f"--keep {name!r} is the target")
    log = RunLog(quiet=quiet)
    frame = read_table(data)
    separator = frame.attrs.get("separator", ",")
    unknown_keep = [k for k in keep if k not in frame.columns]
    if unknown_keep:
        raise unknown("column in --keep", unknown_keep[0], [str(c) for c in frame.columns], ConfigError)
    problem = infer_problem(frame, target, kind=problem_type, metric=metric)
    run = RunDir(Path(out) if out else Path(runs_root) / new_run_id())
    run.path.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(run.path / "tuning", ignore_errors=True)  # --out reused: this run's studies start afresh
    run.log.unlink(missing_ok=True)
    log.attach(run.log)
    log.line(f"{data}: {len(frame)} rows, {frame.shape[1]} columns; target {target!r} is {problem.kind} "
             f"({problem.evidence}); metric {problem.metric}")
    index = RunIndex(runs_root)
    lease.take(run.path)
    index.record(run.id, path=str(run.path.resolve()), status="running", data=str(data), mode=f"automl {problem.kind}")

    data_report = profile(frame, problem, keep=keep)
    write_json(run.path / "data_report.json", data_report)
    report.data_report_html(run.path / "data_report.html", data_report, str(data))
    for warning in data_report["warnings"]:
        if warning["severity"] != "low":
            log.warn(f"{warning['column'] + ': ' if warning['column'] else ''}{warning['message']}")
    for name, reason in data_report["excluded"].items():
        log.line(f"left out {name!r}: {reason}")
    if not data_report["features"]:
        raise DataError("no usable feature columns: every column was left out (see data_report.html)",
                        hint="pass --keep COLUMN to use a flagged column anyway")

    frame, problem = _drop_rare_classes(frame, problem, folds, log)
    features = data_report["features"]
    spec = {"data": str(Path(data).resolve()), "sep": separator, "target": target, "kind": problem.kind,
            "metric": problem.metric, "greater_is_better": problem.greater_is_better, "labels": problem.labels,
            "columns": features, "levels": {n: int(frame[n].nunique()) for n, k in features.items()
                                            if k == "categorical"},
            "folds": folds, "seed": seed}
    X, y = pipeline.prepare(frame, spec)
    write_yaml(run.config, {"data": str(data), "target": target, "budget_seconds": budget_seconds,
                            "metric": problem.metric, "problem_type": problem.kind, "folds": folds, "seed": seed,
                            "models": models, "keep": list(keep), "threads": threads or _cores()})

    chosen = [c for c in CANDIDATES if (not models or c.name in models)]
    missing = [c.name for c in chosen if not c.available()]
    if missing:
        log.line(f"not installed, skipped: {', '.join(missing)}")
    chosen = [c for c in chosen if c.available()]
    window = began + budget_seconds * SEARCH_SHARE - time.time()
    search = Search(spec, X, y, deadline=began + budget_seconds * SEARCH_SHARE, threads=threads or _cores(),
                    announce=log.line, fold_progress=log.progress)
    log.line(f"data report in {time.time() - began:.1f} s; {len(y)} rows, {len(features)} features, "
             f"{folds}-fold cross-validation; searching {len(chosen)} model families for {window:.0f} s")
    search.defaults(chosen, until=time.time() + window * DEFAULTS_SHARE)
    search.tune(chosen, run.path / "tuning")
    search.ensemble()
    best = search.best()
    if best is None:
        first = next(iter(search.skipped.items()), ("", "no model family to try"))
        raise DataError(f"no model could be fitted: {first[0]} {first[1]}".strip(),
                        hint="see log.txt in the run directory for every model's error")

    threshold = calibrate(spec, y, best.oof)
    if threshold is not None:
        spec = {**spec, "threshold": threshold}
        untuned, best.fold_scores = best.score, pipeline.fold_scores(spec, y, best.oof)
        log.line(f"decision threshold {threshold:.2f} on P({problem.labels[1]!r}), tuned on the out-of-fold "
                 f"predictions: {problem.metric} {untuned:.4f} -> {best.score:.4f}")
    log.line(f"best: {best.name}, {problem.metric} {best.score:.4f} ± {best.std:.4f}; refitting on all {len(y)} rows")
    weights = list(best.weights)
    mark = time.time()
    fitted = [pipeline.build(m, spec).fit(X, y) for m in best.members]
    log.line(f"refit in {time.time() - mark:.1f} s")
    mark = time.time()
    schema = {n: {"kind": k, "dtype": str(frame[n].dtype)} for n, k in features.items()}
    card = {"type": "tabular", "problem": problem.to_dict(), "schema": schema, "excluded": data_report["excluded"],
            "input_columns": [str(c) for c in frame.columns if c != target],
            "best": best.name, "score": best.score, "threshold": threshold, "members": [m["candidate"] for m in best.members],
            "python": platform.python_version()}
    TabularModel(fitted, weights, card).save(run.model_dir)

    importance = {"permutation": explain.permutation(spec, X, y, best.members, weights, seed=seed)}
    shap = next((s for s in (explain.tree_shap(f, X, seed) for f in fitted) if s is not None), None)
    if shap is not None:
        importance["shap"] = shap
    log.line(f"importance in {time.time() - mark:.1f} s")
    mark = time.time()
    quality, figures = report.quality(problem.to_dict(), y, best.oof, threshold)
    from ocula.evaluate import plots

    figures["importance_permutation"] = plots.importance_bars(importance["permutation"], "permutation importance")
    if shap is not None:
        figures["importance_shap"] = plots.importance_bars(shap, "mean |SHAP| (tree model)")
    spec_best = {**spec, "members": [{**m, "weight": w / sum(weights)} for m, w in zip(best.members, weights)]}
    write_script(run.path / "candidate.py", spec_best, f"Candidate definition: {best.name} for {target!r}")
    seconds = time.time() - began
    log.line(f"reports in {time.time() - mark:.1f} s")
    metrics = {"problem": problem.to_dict(), "rows": len(y), "folds": folds, "budget_seconds": budget_seconds,
               "seconds": round(seconds, 1), "leaderboard": search.leaderboard(), "best": {**best.row(problem.metric), "threshold": threshold},
               "skipped": search.skipped, "quality": quality, "importance": importance,
               "excluded": data_report["excluded"], "spec": spec_best}
    write_json(run.metrics, metrics)
    (run.path / "plots").mkdir(exist_ok=True)
    for name, png in figures.items():
        (run.path / "plots" / f"{name}.png").write_bytes(png)
    report.model_report_html(run.report, metrics, figures)
    index.record(run.id, status="completed", model=f"automl:{best.name}", classes=len(problem.labels) or None,
                 wall_seconds=round(seconds, 1))
    lease.release(run.path)
    log.line(f"done in {seconds:.0f} s (budget {budget_seconds:.0f} s): {run.path}")
    return TabularRun(run.path, metrics)


def _drop_rare_classes(frame: Any, problem: Any, folds: int, log: RunLog) -> tuple[Any, Any]:
    """Classes with fewer rows than folds cannot be stratified: they are left out, and said so."""
    if problem.kind == "regression":
        return frame, problem
    counts = frame[problem.target].dropna().astype(str).value_counts()
    rare = [c for c, n in counts.items() if n < folds]
    if not rare:
        return frame, problem
    log.warn(f"classes with fewer than {folds} rows are left out: {', '.join(rare[:10])}")
    kept = frame[~frame[problem.target].astype(str).isin(rare)]
    return kept, infer_problem(kept, problem.target, kind=None if problem.kind == "multiclass" else problem.kind,
                               metric=problem.metric)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

