"""The evaluation job: a run and labelled images in; report.html, metrics.json and plots out.

It streams over the images a batch at a time through the run's ``Predictor`` (the one
inference path: the same decode, resize, centre crop and normalisation as validation during
training, on ONNX Runtime by default), so memory holds probabilities, not pixels (plus
thumbnails of the few most confident mistakes). With ``shift="phone"`` it scores a seeded
sample again under each realistic phone-photo corruption at three severities
(``ocula.data.corruptions``) and reports the drop.

The arrays then go to the pure modules beside it (``metrics``, ``diagnose``, ``robustness``,
``report``). This module is the only one in ``ocula.evaluate`` that sees a model or a file.
"""

from __future__ import annotations

import heapq
import json
import os
import resource
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ocula.data import load_source
from ocula.data.corruptions import SEVERITIES, corrupt, corruption_names
from ocula.data.corruptions import describe as describe_corruptions
from ocula.errors import DataError, UsageError, unknown
from ocula.evaluate.diagnose import diagnose
from ocula.evaluate.metrics import TARGET_ACCURACY, selective_sentence, summarize
from ocula.evaluate.multilabel import summarize_multilabel
from ocula.evaluate.report import GalleryItem, render_multilabel_report, render_report
from ocula.evaluate.robustness import shift_summary
from ocula.inference import Predictor, multilabel_record, prediction_record
from ocula.inference.explain import Explainer, overlay
from ocula.storage import RunDir, read_json, read_yaml, write_json
from ocula.storage.log import RunLog

SPLITS = ("test", "val", "train", "all")
SHIFTS = ("phone",)
BATCH = 32  # images decoded and scored together; bounds memory whatever the dataset's size
GALLERY = 16  # confident mistakes shown with their thumbnails
THUMBNAIL = 160
# 30 corrupted copies each: a seeded sample of 500 is 15,000 scored images (about two minutes on
# 2 cores) with a standard error of at most 2.2 points per corruption and severity (shown in the report).
SHIFT_IMAGES = 500


@dataclass(frozen=True)
class Evaluation:
    """Where the report went, and what it says (the metrics.json content)."""

    path: Path
    report: dict[str, Any]

    @property
    def html(self) -> Path:
        return self.path / "report.html"

    @property
    def accuracy(self) -> float:
        return float(self.report["summary"]["accuracy"])


def evaluate(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    split: str = "test",
    top_k: int = 5,
    shift: str | None = None,
    out: str | os.PathLike[str] | None = None,
    label_level: str = "fine",
    shift_images: int = SHIFT_IMAGES,
    seed: int = 0,
    backend: str = "auto",
    target_accuracy: float = TARGET_ACCURACY,
    tta: bool = False,
    quiet: bool = False,
) -> Evaluation:
    """Evaluate the model in ``run`` on ``data``; write the report to ``out``.

    ``split`` picks the part of ``data`` (``test``, ``val``, ``train``, or ``all``); a plain folder
    of class folders is evaluated whole. The default ``out`` is ``RUN/evaluations/<split>``.
    ``backend``: ``auto`` (ONNX Runtime, exporting the model once if needed), ``onnx`` or ``torch``.
    ``target_accuracy``: the report names the confidence threshold that keeps it (selective prediction).
    ``tta``: score every image (and every corrupted image) as the average of four views
    (``Predictor.with_tta``); the default ``out`` then ends in ``-tta``.
    """
    if not 0.0 < target_accuracy <= 1.0:
        raise UsageError(f"--target-accuracy {target_accuracy:g} is not an accuracy: give a value in (0, 1]",
                         hint="e.g. --target-accuracy 0.95")
    if split not in SPLITS:
        raise unknown("split", split, SPLITS)
    if shift is not None and shift not in SHIFTS:
        raise unknown("shift", shift, SHIFTS)
    run_dir = RunDir.open(run, need=("config", "card", "weights"))
    source = load_source(str(data), label_level=label_level)  # a wrong path fails before the model loads
    samples, used = _pick(source, split, str(data))
    log = RunLog(quiet=quiet)
    # No pixel limit: an evaluation reads the user's own files, one decoded image at a time per thread.
    predictor = Predictor.from_run(run_dir.path, backend=backend, max_pixels=None, tta=tta, log=log.line)
    index = {name: i for i, name in enumerate(predictor.labels)}
    if predictor.card.multi_label:  # every image's known labels; an image with none of them is skipped
        known = [(s.path, tuple(index[n] for n in s.names if n in index)) for s in samples
                 if any(n in index for n in s.names)]
    else:
        known = [(s.path, index[s.label]) for s in samples if s.label in index]
    scored = {path for path, _ in known}
    skipped = [{"path": s.path, "reason": f"class {s.label!r} is not one the model was trained on"}
               for s in samples if s.path not in scored]
    target = Path(out) if out is not None else run_dir.path / "evaluations" / (used + (f"-{shift}" if shift else "") + ("-tta" if tta else ""))
    log.line(f"evaluating {run_dir.path} on {len(known)} images ({used} split of {data})")
    return assess(predictor, known, run_dir=run_dir, out=target, data=str(data), split=used, top_k=top_k,
                  shift=shift, shift_images=shift_images, seed=seed, skipped=skipped, log=log,
                  target_accuracy=target_accuracy)


def assess(
    predictor: Predictor,
    items: list[tuple[str, int]],
    *,
    run_dir: RunDir,
    out: Path,
    data: str,
    split: str,
    top_k: int = 5,
    shift: str | None = None,
    shift_images: int = SHIFT_IMAGES,
    seed: int = 0,
    skipped: list[dict[str, str]] | None = None,
    log: RunLog,
    metrics_name: str = "metrics.json",
    predictions_name: str = "predictions.jsonl",
    calibration: dict[str, Any] | None = None,
    target_accuracy: float = TARGET_ACCURACY,
) -> Evaluation:
    """Score (path, label index) pairs, then write metrics.json, predictions.jsonl (one line per
    image, the ``ocula batch`` format with ``true_label``), plots and report.html to ``out``.

    Training passes its run directory as ``out`` and ``metrics_name="evaluation.json"``, so the
    report sits beside the training metrics instead of replacing them, and the calibration it
    fitted (default: the run's, from metrics.json).
    """
    if not items:
        raise DataError(f"no labelled images to evaluate in {data} ({split})",
                        hint="check the path and that its class names match the model's labels")
    skipped = list(skipped or [])
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if predictor.card.multi_label:
        if shift is not None:
            log.warn(f"--shift {shift} is not measured for multi-label models yet; evaluating the clean images")
        return _assess_multilabel(predictor, items, run_dir=run_dir, out=out, data=data, split=split,
                                  skipped=skipped, log=log, metrics_name=metrics_name,
                                  predictions_name=predictions_name, calibration=calibration, began=began)
    scored = _score(predictor, items, top_k, skipped, log, out / predictions_name)
    seconds = time.perf_counter() - began
    if not len(scored.labels):
        raise DataError(f"none of the {len(items)} images in {data} could be read", hint="run `ocula data check`")
    for entry in skipped:
        log.warn(f"skipped {entry['path']}: {entry['reason']}")
    classes = list(predictor.labels)
    summary = summarize(scored.labels, scored.probs, classes, top_k=top_k, target_accuracy=target_accuracy)
    robustness = None
    if shift is not None:
        robustness = _robustness(predictor, scored, shift_images, seed, log)
    config = read_yaml(run_dir.config) if run_dir.config.exists() else {}
    trained = read_json(run_dir.metrics) if run_dir.metrics.exists() else {}
    history = trained.get("epochs", [])
    calibration = calibration or trained.get("calibration")
    findings = diagnose(history, summary, train_counts=_train_counts(run_dir, len(classes)),
                        pretrained=bool(trained.get("pretrained", config.get("pretrained") != "none")),
                        mode=str(config.get("mode", predictor.card.mode)))
    card = predictor.card
    report = {
        "title": f"ocula evaluation: {run_dir.path.name} on {Path(data).name or data} ({split})",
        "run": str(run_dir.path), "data": data, "split": split,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"arch": card.arch, "mode": card.mode, "image_size": card.input_size,
                  "pretrained": str(config.get("pretrained", ""))},
        "engine": predictor.describe(), "tta": [view.name for view in predictor.views] if predictor.tta else None,
        "throughput": _throughput(len(scored.labels), seconds),
        "skipped": skipped, "summary": summary, "findings": [f.to_dict() for f in findings],
        "history": history, "robustness": robustness, "calibration": calibration,
    }
    write_json(out / metrics_name, report)
    render_report(out, report, _explained(scored.gallery(), predictor, run_dir, log))
    log.line(f"accuracy={summary['accuracy']:.4f} top_{summary['top_k']}_accuracy={summary['top_k_accuracy']:.4f} "
             f"on {summary['n']} images, {report['throughput']['images_per_second']} images/s")
    log.line(f"selective prediction: {selective_sentence(summary['selective'])}")
    if robustness is not None:
        log.line(robustness["sentence"])
    for finding in findings:
        if finding.level == "major":
            log.line(f"diagnosis: {finding.title}")
    log.line(f"report: {out / 'report.html'}")
    return Evaluation(out, report)


@dataclass
class _Scored:
    """What one clean pass keeps: labels, probabilities, paths, and the worst mistakes' thumbnails."""

    labels: np.ndarray
    probs: np.ndarray
    paths: list[str]
    mistakes: list[tuple[float, int, GalleryItem]]

    def gallery(self) -> list[GalleryItem]:
        return [item for _, _, item in sorted(self.mistakes, key=lambda m: (-m[0], m[1]))]


def _score(predictor: Predictor, items: list[tuple[str, int]], top_k: int, skipped: list[dict[str, str]],
           log: RunLog, predictions: Path) -> _Scored:
    """One clean pass; every scored image's line (the ``ocula batch`` format) goes to ``predictions``."""
    labels: list[int] = []
    probs: list[np.ndarray] = []
    paths: list[str] = []
    mistakes: list[tuple[float, int, GalleryItem]] = []  # a min-heap on probability, at most GALLERY long
    names = predictor.labels
    k = min(top_k, len(names))
    partial = predictions.with_name(predictions.name + ".partial")
    with partial.open("w", encoding="utf-8") as lines, log.progress("evaluating", len(items)) as advance:
        for batch in predictor.stream([path for path, _ in items], batch_size=BATCH):
            p = batch.probabilities
            assert p is not None
            for position, image, row in zip(batch.positions, batch.images, p):
                path, label = items[position]
                guess = int(row.argmax())
                if guess != label:
                    item = GalleryItem(_thumbnail(image), path, names[label], names[guess],
                                       float(row[guess]), float(row[label]), crop=image)
                    entry = (float(row[guess]), -len(paths), item)
                    if len(mistakes) < GALLERY:
                        heapq.heappush(mistakes, entry)
                    elif entry[:2] > mistakes[0][:2]:
                        heapq.heapreplace(mistakes, entry)
                labels.append(label)
                paths.append(path)
                lines.write(json.dumps(prediction_record(path, row, names, k, true_label=names[label])) + "\n")
            skipped.extend({"path": items[i][0], "reason": error.reason} for i, error in batch.failed)
            probs.append(p)
            advance(len(batch.positions) + len(batch.failed))
    os.replace(partial, predictions)
    return _Scored(np.array(labels, dtype=np.int64), np.concatenate(probs) if probs else np.zeros((0, len(names))),
                   paths, mistakes)


def _assess_multilabel(predictor: Predictor, items: list[tuple[str, Any]], *, run_dir: RunDir, out: Path, data: str,
                       split: str, skipped: list[dict[str, str]], log: RunLog, metrics_name: str,
                       predictions_name: str, calibration: dict[str, Any] | None, began: float) -> Evaluation:
    """``assess`` for a multi-label model: items carry tuples of class indices; mAP, F1 and the
    per-label table instead of the confusion matrix; the most confident false positives."""
    names = predictor.labels
    thresholds = predictor.card.decision_thresholds()
    truth: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    gallery: list[tuple[float, int, GalleryItem]] = []  # a min-heap: the most confident false positives
    partial = out / (predictions_name + ".partial")
    with partial.open("w", encoding="utf-8") as lines, log.progress("evaluating", len(items)) as advance:
        for batch in predictor.stream([path for path, _ in items], batch_size=BATCH):
            assert batch.probabilities is not None
            for position, image, row in zip(batch.positions, batch.images, batch.probabilities):
                path, label_set = items[position]
                hot = np.zeros(len(names), dtype=np.uint8)
                hot[list(label_set)] = 1
                truth.append(hot)
                probs.append(row)
                lines.write(json.dumps(multilabel_record(path, row, names, thresholds,
                                                         [names[j] for j in label_set])) + "\n")
                for j in np.flatnonzero((row >= np.asarray(thresholds)) & (hot == 0)):
                    item = GalleryItem(_thumbnail(image), path, ", ".join(names[k] for k in label_set), names[j],
                                       float(row[j]), 0.0)
                    entry = (float(row[j]), -len(truth), item)
                    if len(gallery) < GALLERY:
                        heapq.heappush(gallery, entry)
                    elif entry[:2] > gallery[0][:2]:
                        heapq.heapreplace(gallery, entry)
            skipped.extend({"path": items[i][0], "reason": error.reason} for i, error in batch.failed)
            advance(len(batch.positions) + len(batch.failed))
    os.replace(partial, out / predictions_name)
    if not truth:
        raise DataError(f"none of the {len(items)} images in {data} could be read", hint="run `ocula data check`")
    for entry in skipped:
        log.warn(f"skipped {entry['path']}: {entry['reason']}")
    seconds = time.perf_counter() - began
    summary = summarize_multilabel(np.stack(truth), np.stack(probs), names, thresholds)
    trained = read_json(run_dir.metrics) if run_dir.metrics.exists() else {}
    card = predictor.card
    report = {
        "title": f"ocula evaluation: {run_dir.path.name} on {Path(data).name or data} ({split})",
        "run": str(run_dir.path), "data": data, "split": split, "multi_label": True,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"arch": card.arch, "mode": card.mode, "image_size": card.input_size},
        "engine": predictor.describe(),
        "throughput": _throughput(len(truth), seconds),
        "skipped": skipped, "summary": summary, "history": trained.get("epochs", []),
        "calibration": calibration or trained.get("calibration"),
    }
    write_json(out / metrics_name, report)
    render_multilabel_report(out, report, [item for _, _, item in sorted(gallery, key=lambda g: (-g[0], g[1]))])
    log.line(f"mAP={summary['mAP']:.4f} micro_f1={summary['micro_f1']:.4f} macro_f1={summary['macro_f1']:.4f} "
             f"subset_accuracy={summary['accuracy']:.4f} on {summary['n']} images")
    log.line(f"report: {out / 'report.html'}")
    return Evaluation(out, report)


def _throughput(images: int, seconds: float) -> dict[str, Any]:
    return {"images": images, "seconds": round(seconds, 2),
            "images_per_second": round(images / seconds, 1) if seconds else 0.0,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """A cropped CHW image -> an HWC thumbnail for the gallery."""
    return _small(image.transpose(1, 2, 0))


def _small(image: np.ndarray) -> np.ndarray:
    thumb = Image.fromarray(np.ascontiguousarray(image))
    thumb.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(thumb)


def _explained(gallery: list[GalleryItem], predictor: Predictor, run_dir: RunDir, log: RunLog) -> list[GalleryItem]:
    """The gallery with Grad-CAM heatmaps of the predicted and the true class (when the run has its
    PyTorch weights: an exported model alone cannot be explained)."""
    if not gallery or not run_dir.weights.exists():
        return gallery
    explainer = Explainer.from_engine(predictor.engine, predictor.card) or Explainer.from_run(run_dir.path)
    crops = np.stack([g.crop for g in gallery])
    index = {name: i for i, name in enumerate(predictor.labels)}
    predicted = explainer.heatmaps(crops, [index[g.predicted_label] for g in gallery])
    true = explainer.heatmaps(crops, [index[g.true_label] for g in gallery])
    log.line(f"heatmaps of the {len(gallery)} most confident mistakes (Grad-CAM) for the report")
    return [replace(g, heatmaps=(_small(overlay(g.crop, p)), _small(overlay(g.crop, t))))
            for g, p, t in zip(gallery, predicted, true)]


def _robustness(predictor: Predictor, scored: _Scored, limit: int, seed: int, log: RunLog) -> dict[str, Any]:
    """Accuracy under every corruption and severity, on a seeded sample of the scored images.

    The corruption of the next (corruption, severity) runs in threads while the engine scores
    the current one, so the two share the cores instead of taking turns.
    """
    n = len(scored.labels)
    chosen = np.arange(n) if not limit or limit >= n else np.sort(np.random.default_rng(seed).choice(n, limit, False))
    paths = [scored.paths[i] for i in chosen]
    truth = scored.labels[chosen]
    clean = float(np.mean(scored.probs[chosen].argmax(1) == truth))
    cells = [(name, s) for name in corruption_names() for s in SEVERITIES]
    correct = dict.fromkeys(cells, 0)
    log.line(f"phone-photo shift: {len(cells) // len(SEVERITIES)} corruptions x {len(SEVERITIES)} severities "
             f"on {len(paths)} images")
    done, began = 0, time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool, log.progress("shift: phone", len(paths)) as advance:

        def corrupted(arrays: list[np.ndarray], seeds: list[int], cell: tuple[str, int]) -> list[Future]:
            return [pool.submit(corrupt, array, cell[0], cell[1], s) for array, s in zip(arrays, seeds)]

        for batch in predictor.stream(paths, batch_size=BATCH, score=False, pool=pool):
            arrays = [p.array for p in batch.prepared]
            seeds = [seed * 1_000_003 + i for i in batch.positions]
            labels = truth[batch.positions]
            following = corrupted(arrays, seeds, cells[0]) if arrays else []
            for c, cell in enumerate(cells if arrays else []):
                current = following
                following = corrupted(arrays, seeds, cells[c + 1]) if c + 1 < len(cells) else []
                predicted = predictor.probabilities_of([f.result() for f in current]).argmax(1)
                correct[cell] += int(np.sum(predicted == labels))
            done += len(arrays)
            advance(len(batch.positions) + len(batch.failed))
    total = max(done, 1)
    results = [{"corruption": name, "severity": s, "accuracy": correct[name, s] / total, "n": done}
               for name, s in cells]
    summary = shift_summary(clean, results)
    seconds = time.perf_counter() - began
    summary["images"] = done
    summary["throughput"] = {"scored_images": done * len(cells), "seconds": round(seconds, 2),
                             "images_per_second": round(done * len(cells) / seconds, 1) if seconds else 0.0}
    summary["definitions"] = {row["corruption"]: row for row in describe_corruptions()}
    return summary


def _pick(source: Any, split: str, data: str) -> tuple[list[Any], str]:
    """The samples of ``split``; a plain class-folder dataset (no splits) is evaluated whole."""
    parts = {"train": source.train, "val": source.val, "test": source.test}
    if split == "all":
        return [s for part in parts.values() for s in (part or [])], "all"
    if parts[split]:
        return list(parts[split]), split
    if source.val is None and source.test is None:  # one folder of class folders: a holdout set
        return list(source.train), "all"
    present = [name for name, part in parts.items() if part]
    raise UsageError(f"{data} has no {split} split", hint=f"use --split with one of: {', '.join(present + ['all'])}")


def _train_counts(run_dir: RunDir, n_classes: int) -> list[int]:
    if not run_dir.split.exists():
        return []
    rows = read_json(run_dir.split).get("train", [])
    return np.bincount([int(row[1]) for row in rows], minlength=n_classes).tolist()


def find_evaluation(path: str | os.PathLike[str], split: str | None = None) -> Path:
    """The evaluation JSON behind ``path``: an evaluation folder, or a run's newest evaluation.

    A run that was never evaluated still has the validation report training wrote.
    """
    folder = Path(path)
    if (folder / "metrics.json").exists() and "summary" in read_json(folder / "metrics.json"):
        return folder / "metrics.json"
    run_dir = RunDir.open(folder, need=("config",))
    found = sorted((run_dir.path / "evaluations").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    if split is not None:
        found = [p for p in found if p.parent.name.split("-")[0] == split]
    if found:
        return found[-1]
    if split in (None, "validation") and (run_dir.path / "evaluation.json").exists():
        return run_dir.path / "evaluation.json"
    raise UsageError(f"{path} has no {split + ' ' if split else ''}evaluation",
                     hint=f"run `ocula evaluate {path} DATA` first")


def compare(paths: list[str], split: str | None = None) -> list[dict[str, Any]]:
    """One row per run or evaluation folder: what a side-by-side comparison shows."""
    rows = []
    for path in paths:
        source = find_evaluation(path, split)
        report = read_json(source)
        run_dir = RunDir(Path(report["run"]))
        config = read_yaml(run_dir.config) if run_dir.config.exists() else {}
        summary, shift = report["summary"], report.get("robustness") or {}
        rows.append({
            "run": run_dir.path.name, "evaluation": str(source.parent if source.name == "metrics.json" else source),
            "model": report["model"]["arch"], "mode": report["model"]["mode"], "augment": config.get("augment"),
            "split": report["split"], "images": summary["n"], "accuracy": summary["accuracy"],
            "top_k_accuracy": summary.get("top_k_accuracy"), "balanced_accuracy": summary.get("balanced_accuracy"),
            "macro_f1": summary["macro"]["f1"] if "macro" in summary else summary.get("macro_f1"),
            "ece": summary["calibration"]["ece"] if "calibration" in summary else None,
            "mAP": summary.get("mAP"),
            "shift_accuracy": shift.get("mean_accuracy"), "shift_drop": shift.get("mean_drop"),
            "hurts_most": shift.get("hurts_most"),
        })
    return rows
