"""Drift monitoring: captured live traffic against a baseline from the run's validation set.

``baseline(run)`` scores the run's validation images once with the serving predictor and keeps,
per image, the statistics of ``ocula.data.stats``, the predicted class and its confidence
(``RUN/monitor/baseline.json``, recomputed when the weights are newer). ``drift`` compares a
capture (``ocula.serve.capture``) with it and says in words what changed and what to do.

Tests and thresholds (a finding needs ``MIN_SAMPLE`` captured images, else "too few"):
- confidence and each image statistic: two-sample Kolmogorov-Smirnov; drift when the
  statistic is >= ``KS_DRIFT`` *and* p < ``KS_P`` (a large, not merely significant, shift);
- predicted-class mix: population stability index over the classes (``PSI_EPSILON`` added to
  every share); >= ``PSI_MAJOR`` is drift, >= ``PSI_MINOR`` a minor shift;
- accuracy on labelled requests: drift when it is ``ACCURACY_DROP`` or more below the
  validation accuracy and the drop exceeds two standard errors of the difference.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ocula.data.stats import DESCRIBE, STATS, image_stats
from ocula.errors import UsageError, suggest
from ocula.inference import Predictor
from ocula.models.card import ModelCard
from ocula.serve.capture import CAPTURE_GLOB
from ocula.storage import RunDir, read_json, write_json

MIN_SAMPLE = 30
KS_DRIFT, KS_P = 0.2, 0.01
PSI_MAJOR, PSI_MINOR, PSI_EPSILON = 0.2, 0.1, 1e-4
ACCURACY_DROP = 0.05
CHUNK = 32
FORMAT = 1
IMAGE_STATS = (*STATS, "megapixels")
QUALITY = STATS  # statistics that phone-photo augmentation addresses
WORDS = {**DESCRIBE, "confidence": ("less confident", "more confident")}
THRESHOLDS = {"min_sample": MIN_SAMPLE, "ks_statistic": KS_DRIFT, "ks_p_value": KS_P, "psi_major": PSI_MAJOR,
              "psi_minor": PSI_MINOR, "psi_epsilon": PSI_EPSILON, "accuracy_drop": ACCURACY_DROP}


@dataclass
class Finding:
    name: str  # "confidence", an image statistic, "predicted class" or "accuracy"
    test: str  # "KS", "PSI" or "drop" (validation accuracy - live accuracy)
    level: str  # "drift", "minor", "ok" or "too few"
    message: str
    statistic: float | None = None  # KS statistic, PSI, or the accuracy drop
    p_value: float | None = None
    baseline: float | None = None  # validation median (KS) or validation accuracy
    live: float | None = None  # production median (KS) or live accuracy
    direction: str | None = None  # for a drift: "darker" (DESCRIBE), "less confident", "shifted", "fell"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class MonitorReport:
    run: str
    captured: int
    baseline_images: int
    findings: list[Finding]
    headline: str
    actions: list[str]
    labelled: int = 0

    @property
    def drifted(self) -> bool:
        return any(f.level == "drift" for f in self.findings)

    @property
    def summary(self) -> list[str]:
        return [self.headline, *(f"to do: {action}" for action in self.actions)]

    def finding(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "captured": self.captured, "baseline_images": self.baseline_images,
                "labelled": self.labelled, "drift": self.drifted, "headline": self.headline,
                "actions": self.actions, "summary": self.summary, "thresholds": THRESHOLDS,
                "findings": [asdict(f) for f in self.findings]}


def monitor(run: str | os.PathLike[str], capture_dir: str | os.PathLike[str],
            labels: str | os.PathLike[str] | None = None, *, log: Callable[[str], None] | None = None) -> MonitorReport:
    """The whole check: read the capture and the labels first, so bad input fails before any scoring."""
    captured = read_capture(capture_dir)
    truth = None
    if labels is not None:
        card = ModelCard.from_json(RunDir.open(run, need=("card", "weights")).card)
        truth = read_labels(labels, card.labels)
    return drift(baseline(run, log=log), captured, truth)


# -- the baseline ------------------------------------------------------------------------------


def baseline(run: str | os.PathLike[str], *, log: Callable[[str], None] | None = None,
             predictor: Predictor | None = None) -> dict[str, Any]:
    """Statistics, predictions and accuracy of the run's validation set, cached in
    ``RUN/monitor/baseline.json`` until the weights change. ``predictor``: the run's model,
    already loaded (default: ``Predictor.from_run(run)``, the engine the server would use)."""
    say = log or (lambda message: print(message, file=sys.stderr))
    run_dir = RunDir.open(run, need=("card", "weights"))
    path = run_dir.path / "monitor" / "baseline.json"
    if path.exists() and path.stat().st_mtime >= run_dir.weights.stat().st_mtime:
        try:
            saved = read_json(path)
            if saved.get("format") == FORMAT:
                return saved
        except (ValueError, OSError):
            pass  # a damaged file is recomputed
    if not run_dir.split.exists():
        raise UsageError(f"{str(run)!r} has no split.json, so no validation set to compare with",
                         hint="monitor a run written by `ocula train`")
    rows = read_json(run_dir.split).get("val") or []
    if not rows:
        raise UsageError(f"{str(run)!r} has no validation images to compute a baseline from")
    if predictor is None:
        predictor = Predictor.from_run(run_dir.path, log=say)
    say(f"computing the monitoring baseline from {len(rows)} validation images (once per model) ...")
    images: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for batch in predictor.stream([row[0] for row in rows], batch_size=CHUNK):
        skipped.update(error.reason for _, error in batch.failed)
        for i, prepared, row in zip(batch.positions, batch.prepared, batch.probabilities):  # type: ignore[arg-type]
            width, height = prepared.size
            stats = {**image_stats(prepared.array), "width": width, "height": height,
                     "megapixels": round(width * height / 1e6, 4)}
            images.append({"path": rows[i][0], "label": rows[i][1], "predicted": int(np.argmax(row)),
                           "confidence": round(float(row.max()), 6), "stats": stats})
    if not images:
        gone = skipped.get("unreadable", 0)
        what = (f"the validation images of {str(run)!r} are gone ({gone} of {len(rows)} cannot be read, "
                f"e.g. {rows[0][0]})" if gone == len(rows) else
                f"none of the {len(rows)} validation images of {str(run)!r} can be used ({_counts(skipped)})")
        raise UsageError(what, hint="the baseline is computed from them once; restore them and run again")
    if skipped:
        say(f"baseline: skipped {sum(skipped.values())} validation images ({_counts(skipped)})")
    # multi-label (a list of labels per image): right when the top label is one of the image's labels
    measured = float(np.mean([i["predicted"] in i["label"] if isinstance(i["label"], list)
                              else i["predicted"] == i["label"] for i in images]))
    best = read_json(run_dir.metrics).get("best", {}) if run_dir.metrics.exists() else {}
    recorded = None if predictor.card.multi_label else best.get("validation:accuracy")
    result = {
        "format": FORMAT, "run": str(run_dir.path), "created": round(time.time(), 3), "model": predictor.describe(),
        "classes": list(predictor.labels),
        "validation_accuracy": float(recorded) if recorded is not None else measured,
        "accuracy_source": "metrics.json" if recorded is not None else "measured now",
        "measured_accuracy": measured, "skipped": dict(skipped), "images": images,
    }
    write_json(path, result)
    return result


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counter.most_common())


# -- reading captures and labels ---------------------------------------------------------------


def read_capture(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of every ``capture-*.jsonl`` in ``directory``; a torn last line (a server
    stopped mid-write) is skipped, any other unreadable line is an error."""
    folder = Path(directory)
    hint = "start the server with --capture-dir FOLDER and send it some traffic first"
    if not folder.is_dir():
        raise UsageError(f"capture folder {str(directory)!r} does not exist", hint=hint)
    records: list[dict[str, Any]] = []
    for path in sorted(folder.glob(CAPTURE_GLOB)):
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["request_id"], record["stats"], record["probabilities"], record["probability"]  # noqa: B018
                record["predicted_label"]  # noqa: B018 - the keys drift() reads
            except (ValueError, KeyError, TypeError):
                if number == len(lines):  # no newline after it: torn mid-write
                    continue
                raise UsageError(f"{path}:{number} is not a capture record",
                                 hint="capture files are written by the server; remove or repair this line") from None
            records.append(record)
    if not records:
        raise UsageError(f"no captured requests in {str(directory)!r} (no {CAPTURE_GLOB} lines)", hint=hint)
    return records


def read_labels(path: str | os.PathLike[str], classes: Sequence[str] | None = None) -> dict[Any, str]:
    """Ground truth for captured requests: CSV with a ``request_id,label`` header (optional
    ``index`` column) or JSON Lines with those keys. Keys are ``(request_id, index)`` when an
    index is given, else ``request_id`` (every image of that request). Labels are class names;
    with ``classes``, an unknown one is an error naming it."""
    source = Path(path)
    if not source.is_file():
        raise UsageError(f"labels file {str(path)!r} does not exist")
    text = source.read_text(encoding="utf-8-sig", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as error:
            raise UsageError(f"{path} is not valid JSON Lines: {error}") from None
    else:
        rows = [{(k or "").strip(): v for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(text), skipinitialspace=True)]
    if not rows or not all(isinstance(r, dict) and r.get("request_id") not in (None, "") and r.get("label")
                           not in (None, "") for r in rows):
        raise UsageError(f"{path} needs request_id and label in every row",
                         hint="CSV with the header request_id,label (optional index), or JSON Lines with those keys")
    labels: dict[Any, str] = {}
    for row in rows:
        request, index = str(row["request_id"]), row.get("index")
        key: Any = request
        if index not in (None, ""):
            try:
                key = (request, int(index))
            except (TypeError, ValueError):
                raise UsageError(f"{path}: index {index!r} of request {request!r} is not a number") from None
        labels[key] = str(row["label"]).strip()
    if classes is not None:
        unknown = sorted(set(labels.values()) - set(classes))
        if unknown:
            shown = ", ".join(repr(name) for name in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise UsageError(f"unknown class{'es' if len(unknown) > 1 else ''} {shown} in {path}",
                             hint=(f"{unknown[0]!r}: " if len(unknown) > 1 else "") + suggest(unknown[0], classes))
    return labels


# -- drift ---------------------------------------------------------------------------------------


def drift(base: dict[str, Any], captured: list[dict[str, Any]], labels: dict[Any, str] | None = None) -> MonitorReport:
    """Compare captured requests with the baseline; see the module docstring for the tests."""
    from scipy.stats import ks_2samp

    classes = list(base["classes"])
    foreign = next((r for r in captured if r.get("predicted_label") not in classes
                    or len(r["probabilities"]) != len(classes)), None)
    if foreign is not None:
        raise UsageError(f"request {foreign['request_id']!r} was captured from a model with other classes "
                         f"than {base['run']!r}", hint="monitor a capture against the run that served it")
    images = base["images"]
    enough = len(captured) >= MIN_SAMPLE
    findings: list[Finding] = []
    quantities = {"confidence": ([i["confidence"] for i in images], [r["probability"] for r in captured])}
    for name in IMAGE_STATS:
        quantities[name] = ([i["stats"][name] for i in images if name in i["stats"]],
                            [r["stats"][name] for r in captured if r["stats"].get(name) is not None])
    for name, (before, after) in quantities.items():
        if not before or not after:
            continue
        old, new = float(np.median(before)), float(np.median(after))
        test = ks_2samp(before, after)
        statistic, p = float(test.statistic), float(test.pvalue)
        shifted = statistic >= KS_DRIFT and p < KS_P
        lower = new < old or (new == old and np.mean(after) < np.mean(before))
        direction = WORDS[name][0 if lower else 1]
        level = "too few" if not enough else "drift" if shifted else "ok"
        message = (f"{name}: median {_num(old)} in validation, {_num(new)} in production "
                   f"(KS {statistic:.2f}, p={p:.2g})" + (f": {direction}" if level == "drift" else ""))
        findings.append(Finding(name, "KS", level, message, round(statistic, 4), p, old, new,
                                direction if level == "drift" else None))
    findings.append(_prediction_mix(classes, [i["predicted"] for i in images],
                                    [classes.index(r["predicted_label"]) for r in captured], enough))
    labelled = 0
    if labels is not None:
        pairs = [(r, _label_of(r, labels)) for r in captured]
        pairs = [(r, label) for r, label in pairs if label is not None]
        labelled = len(pairs)
        findings.append(_accuracy(base, pairs, len(labels)))
    headline, actions = _advice(base, findings, len(captured), labels is not None)
    return MonitorReport(base["run"], len(captured), len(images), findings, headline, actions, labelled)


def _prediction_mix(classes: list[str], before: list[int], after: list[int], enough: bool) -> Finding:
    old = np.bincount(before, minlength=len(classes)) / len(before)
    new = np.bincount(after, minlength=len(classes)) / len(after)
    p, q = ((shares + PSI_EPSILON) / (1 + PSI_EPSILON * len(classes)) for shares in (old, new))
    psi = float(np.sum((q - p) * np.log(q / p)))
    level = "too few" if not enough else "drift" if psi >= PSI_MAJOR else "minor" if psi >= PSI_MINOR else "ok"
    moved = sorted(range(len(classes)), key=lambda c: -abs(new[c] - old[c]))[:3]
    change = ", ".join(f"{classes[c]!r} {old[c]:.0%} -> {new[c]:.0%}" for c in moved if abs(new[c] - old[c]) >= 0.005)
    message = f"predicted class mix: PSI {psi:.3f}" + (f" ({change})" if change else "")
    detail = {"validation": dict(zip(classes, np.round(old, 4).tolist())),
              "production": dict(zip(classes, np.round(new, 4).tolist()))}
    return Finding("predicted class", "PSI", level, message, round(psi, 4),
                   direction="shifted" if level == "drift" else None, detail={**detail, "changes": change})


def _label_of(record: dict[str, Any], labels: dict[Any, str]) -> str | None:
    key = (str(record["request_id"]), int(record.get("index") or 0))
    return labels.get(key, labels.get(key[0]))


def _accuracy(base: dict[str, Any], pairs: list[tuple[dict[str, Any], str]], given: int) -> Finding:
    validation = float(base["validation_accuracy"])
    if not pairs:
        return Finding("accuracy", "drop", "too few",
                       f"none of the {given} labels matches a captured request id", baseline=validation)
    n = len(pairs)
    live = sum(r["predicted_label"] == label for r, label in pairs) / n
    drop = validation - live
    error = math.sqrt(live * (1 - live) / n + validation * (1 - validation) / max(len(base["images"]), 1))
    level = "too few" if n < MIN_SAMPLE else "drift" if drop >= ACCURACY_DROP and drop > 2 * error else "ok"
    message = (f"accuracy {live:.2f} on {n} labelled requests, {validation:.2f} on validation "
               f"({'-' if drop > 0 else '+'}{abs(drop):.2f})")
    return Finding("accuracy", "drop", level, message, round(drop, 4), None, validation, live,
                   "fell" if level == "drift" else None, {"labelled": n, "correct": round(live * n)})


def _advice(base: dict[str, Any], findings: list[Finding], captured: int, labelled: bool) -> tuple[str, list[str]]:
    """The headline and the actions, in plain words."""
    drifted = {f.name: f for f in findings if f.level == "drift"}
    parts, actions = [], []
    looks = [drifted[name].direction for name in IMAGE_STATS if name in drifted]
    if looks:
        parts.append(f"production images are {_join(looks)} than the validation images")
    if "confidence" in drifted:
        f = drifted["confidence"]
        parts.append(f"the model is {f.direction} (median {f.baseline:.2f} -> {f.live:.2f})")
    mix = next(f for f in findings if f.name == "predicted class")
    if mix.level in ("drift", "minor"):
        parts.append(f"the mix of predicted classes has shifted{' slightly' if mix.level == 'minor' else ''} "
                     f"({mix.detail['changes'] or f'PSI {mix.statistic:.2f}'})")
    accuracy = next((f for f in findings if f.name == "accuracy"), None)
    if accuracy is not None and accuracy.live is None:
        parts.append(accuracy.message)
    elif accuracy is not None:
        n = accuracy.detail["labelled"]
        if accuracy.level == "drift":
            parts.append(f"accuracy fell from {accuracy.baseline:.2f} to {accuracy.live:.2f} on {n} labelled requests")
        else:
            parts.append(f"accuracy is {accuracy.live:.2f} on {n} labelled requests "
                         f"(validation {accuracy.baseline:.2f})" + (", too few to judge" if accuracy.level == "too few"
                                                                    else ""))
    if captured < MIN_SAMPLE:
        parts.insert(0, f"too few captured images to judge drift ({captured}; at least {MIN_SAMPLE} are needed)")
        actions.append("capture more traffic and run `ocula monitor` again")
    elif not drifted:
        parts.insert(0, f"no drift: the {captured} captured images look like the validation images")
    quality = [drifted[name].direction for name in QUALITY if name in drifted]
    if quality:
        actions.append(f"retrain with --augment phone so the model learns from {_join(quality)} photos; "
                       f"`ocula evaluate {base['run']} DATA --shift phone` shows what such photos cost now")
    if "megapixels" in drifted:
        f = drifted["megapixels"]
        actions.append(f"photos arrive {f.direction} than in training (median {f.baseline:g} -> {f.live:g} MP): "
                       "check how the client takes or resizes them")
    if drifted.keys() - {"megapixels"}:
        actions.append("label a sample of the captured requests and add them to the training data, then retrain")
    if "accuracy" in drifted and not looks:
        actions.append("the photos look as before but accuracy fell: what they show has changed (new subjects, "
                       "new classes); review the labelled mistakes")
    if drifted and not labelled:
        actions.append("pass --labels with the true class of some captured request ids to measure live accuracy")
    if captured >= MIN_SAMPLE and not drifted:
        actions.append("nothing to change; run `ocula monitor` again as traffic grows")
        if not labelled:
            actions.append("to measure live accuracy, pass --labels with the true class of some captured request ids")
    return "; ".join(parts), list(dict.fromkeys(actions))


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
