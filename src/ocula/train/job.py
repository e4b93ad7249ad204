"""``ocula.train``: one training run from data folder to run directory, top to bottom.

audit -> split -> model -> decode cache -> (head on cached features) -> (backbone epochs)
-> best weights, card, metrics, index. Each epoch is checkpointed, so ``resume`` continues an
interrupted run and Ctrl-C loses at most the epoch in progress.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import WeightedRandomSampler
from torchvision.transforms import v2

from ocula.config import TrainConfig, parse_duration
from ocula.data import DataSource, Sample, audit, load_source, stratified_split
from ocula.data.augment import consistency_views, get_policy, mix_batch, random_erasing
from ocula.data.corruptions import MILD, mild_copies
from ocula.data.decode_cache import DecodeCache, default_cache_dir
from ocula.data.stats import image_stats, typical_ranges
from ocula.errors import DataError, Interrupted, UsageError
from ocula.models import (
    OFFLINE_WEIGHTS, ModelCard, Preprocessing, configure, create_model, features_and_head, load_torch_file,
    named_stage_groups, parse_mode,
)
from ocula.evaluate.calibration import fit_temperature, rescale
from ocula.evaluate.job import assess
from ocula.evaluate.metrics import calibration as calibration_of
from ocula.evaluate.metrics import log_loss
from ocula.evaluate.multilabel import summarize_multilabel, tune_thresholds
from ocula.inference import Predictor
from ocula.models.device import CPU, Device
from ocula.models.device import resolve as resolve_device
from ocula.inference.engines import keep_freed_memory
from ocula.storage import RunDir, RunIndex, lease, new_run_id, read_json, read_yaml, write_json, write_yaml
from ocula.train.batches import CachedImages, Split, cpu_budget, loader
from ocula.train.features import HeadDraws, extract, head_epochs
from ocula.storage.log import RunLog
from ocula.train.loop import backbone_epochs, measure_step_seconds
from ocula.train.run import Run
from ocula.train.schedule import History, epoch_line

# Proven defaults per mode (AdamW peak rates and epochs), after fastai's fine_tune recipe:
# head rate base_lr, then base_lr / 2 spread down to base_lr / 200 for the earliest layers.
BASE_LR = {"head": 2e-3, "finetune": 2e-3, "last": 1e-3, "full": 3e-3}
DEFAULT_EPOCHS = {"head": 10, "finetune": 5, "last": 8, "full": 30}
MAX_EXTRA_VIEWS = 2  # grocery, 10 head epochs: 3 views 0.733 in 110 s, 5 views 0.750 in 211 s (BENCHMARKS.md)
FEATURE_BATCH = 64
# Sigmoid outputs learn slower than a softmax at the same rate: grocery composites (head, 10 epochs),
# test mAP 0.636 at the softmax head's rate, 0.689 at 5x (BENCHMARKS.md).
MULTI_LABEL_HEAD_LR = 5
MIN_CALIBRATION_IMAGES = 20  # fewer validation images than this cannot pin down even one temperature
SHIFTED_IMAGES = 3000  # corrupted validation copies scored for --calibrate phone (2 to 20 per image)
RANGE_SAMPLE = 2000  # training photos read again for the card's image_ranges: quantiles, not a census
RESUME_KEYS = {"model", "epoch", "history", "best_model", "phase", "rng"}  # what last.pt holds


def train(data: str | Path | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          on_epoch: Callable[[dict[str, Any]], None] | None = None, **options: Any) -> Run:
    """Train a classifier on ``data`` (any layout ``ocula data check`` reads) and return its Run.

    Options are the fields of :class:`ocula.config.TrainConfig` (``budget`` may be given as
    '10m'). ``resume`` continues the run directory of an interrupted run instead.
    ``on_epoch(record)`` sees each epoch's record (``epoch``, ``validation:accuracy``, ...)
    once it is checkpointed; an exception it raises stops training there (tuning prunes so).
    """
    began = time.perf_counter()
    log = RunLog(quiet=quiet)
    if "budget" in options:
        options["budget_seconds"] = parse_duration(options.pop("budget"))
    if resume is not None:
        run = RunDir.open(resume, need=("config", "checkpoint", "split"))
        # a config.yaml without `consistency` was written before the loss existed: it ran without it
        cfg = TrainConfig.from_dict({"consistency": 0.0, **read_yaml(run.config)})
        checkpoint = load_torch_file(run.checkpoint, what="checkpoint",
                                     hint="the run cannot be resumed; start a new one")
        if not isinstance(checkpoint, dict) or not RESUME_KEYS <= checkpoint.keys():
            raise UsageError(f"{run.checkpoint} is not a checkpoint written by `ocula train`",
                             hint="the run cannot be resumed; start a new one")
    else:
        if data is None:
            raise UsageError("no data given", hint="pass a folder of class folders or a manifest")
        cfg = TrainConfig.from_dict({"data": str(data), **options})
        checkpoint = None
        run = RunDir(Path(cfg.out) if cfg.out else Path(cfg.runs_root) / new_run_id())
        if run.weights.exists() or run.checkpoint.exists():
            raise UsageError(f"{run.path} already holds a run", hint="choose another --out, or --resume it")

    kind, last_n = parse_mode(cfg.mode)
    get_policy(cfg.augment, 224)  # an unknown policy fails now, not after the audit
    device = resolve_device(cfg.device)  # an absent GPU fails now too
    threads, workers = cpu_budget(cfg.threads)
    torch.set_num_threads(threads)
    keep_freed_memory()
    torch.manual_seed(cfg.seed)

    if checkpoint is None:
        source = load_source(cfg.data, label_level=cfg.label_level)
        val_source = load_source(cfg.val, label_level=cfg.label_level) if cfg.val else None
        create_model(cfg.model, max(2, len(source.classes)), pretrained=cfg.pretrained)  # fail fast
        run.create()
        log.attach(run.log)
        write_yaml(run.config, cfg.to_dict())
    else:
        log.attach(run.log)
        log.line(f"resuming {run.path} from epoch {checkpoint['epoch']}")
    index = RunIndex(cfg.runs_root)
    lease.take(run.path)  # until this process ends: `runs list` tells a killed run from a running one
    index.record(run.id, path=str(run.path.resolve()), status="running", data=cfg.data, model=cfg.model,
                 mode=cfg.mode, augment=cfg.augment)

    if checkpoint is None:
        classes, train_split, val_split, how = _prepare_data(cfg, source, val_source, run, log)
        write_json(run.split, {"how": how, "classes": classes, "train": _rows(train_split),
                               "val": _rows(val_split)})
    else:
        saved = read_json(run.split)
        classes, how = saved["classes"], saved["how"]
        train_split, val_split = _split(saved["train"], len(classes)), _split(saved["val"], len(classes))

    # On resume too: the same starting weights give the same preprocessing and provenance;
    # the checkpoint's tensors replace them below.
    model, pre, weights_from = create_model(
        cfg.model, len(classes), pretrained=cfg.pretrained, drop_rate=cfg.drop_rate,
        image_size=cfg.image_size, labels=classes,
    )
    size = pre.input_size
    model.to(device.torch, memory_format=torch.channels_last)  # faster convolutions on CPU, inputs match below
    cache = DecodeCache(Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(), pre.resize_short_side)
    log.line(f"device {device.describe()}" + (f", {threads} threads" if device.type == "cpu" else ""))
    log.line(f"model {cfg.model} ({weights_from}), mode {cfg.mode}, image size {size}, "
             f"{len(classes)} classes, {len(train_split)} train / {len(val_split)} validation images ({how})")
    with log.progress("decoding images once", len(train_split) + len(val_split)) as advance:
        cache.ensure(list(zip(train_split.paths + val_split.paths, train_split.digests + val_split.digests)),
                     progress=lambda done, total: advance(1))
    if cache.failed:  # passed the audit but not the full decode: skip and say so, never crash later
        for path, reason in sorted(cache.failed.items()):
            log.warn(f"skipped {path}: {reason}")
        train_split, val_split = _without(train_split, cache.failed), _without(val_split, cache.failed)

    multi = train_split.multi_label
    if multi and checkpoint is None and not Path(cfg.pretrained).exists():
        _prior_bias(model, train_split.labels)
    criterion, sample_weights, imbalance_note = _loss(cfg, train_split, len(classes))
    log.line(imbalance_note)
    history = History(patience=cfg.patience, min_epochs=cfg.min_epochs,
                      metric="validation:mAP" if multi else "validation:accuracy")
    job = Job(
        cfg=cfg, model=model, pre=pre, cache=cache, train=train_split, val=val_split, log=log,
        workers=workers, policy=get_policy(cfg.augment, size), clean=v2.CenterCrop(size),
        criterion=criterion.to(device.torch), device=device, sample_weights=sample_weights,
        deadline=began + cfg.budget_seconds if cfg.budget_seconds else None,
        from_scratch=cfg.pretrained == "none"
        or (cfg.pretrained == "default" and cfg.model not in OFFLINE_WEIGHTS),
    )
    state: dict[str, Any] = {"best_model": None, "phase": None}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        history.epochs, history.best = checkpoint["history"]["epochs"], checkpoint["history"]["best"]
        state.update(best_model=checkpoint["best_model"], phase=checkpoint["phase"])
        torch.set_rng_state(checkpoint["rng"])

    def end_epoch(phase: str, phase_epoch: int, record: dict[str, Any], optimizer: torch.optim.Optimizer,
                  step: int, planned: int) -> bool:
        """Record, keep the best weights, checkpoint, log; True when training should stop."""
        partial = run.checkpoint.with_suffix(".partial")
        record = {"epoch": len(history.epochs) + 1, "phase": phase, **record,
                  "elapsed_seconds": round(time.perf_counter() - began, 2)}
        if history.add(record):
            state["best_model"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log.line(epoch_line(record))
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "phase": phase,
                    "phase_epoch": phase_epoch, "planned": planned, "step": step, "epoch": record["epoch"],
                    "history": history.to_dict(), "best_model": state["best_model"],
                    "rng": torch.get_rng_state()}, partial)
        os.replace(partial, run.checkpoint)  # a Ctrl-C during the save never leaves a broken checkpoint
        if on_epoch is not None:
            on_epoch(record)
        return phase != "head" and history.should_stop()

    job.end_epoch = end_epoch
    train_began = time.perf_counter()
    images_seen = 0
    try:
        if kind in ("head", "finetune") and state["phase"] in (None, "head"):
            images_seen += _head_phase(job, kind, resume_from=checkpoint if state["phase"] == "head" else None)
        if kind != "head":
            images_seen += _backbone_phase(job, kind, last_n, len(classes),
                                           resume_from=checkpoint if state["phase"] == "backbone" else None)
    except KeyboardInterrupt:
        index.record(run.id, status="interrupted")
        lease.release(run.path)
        log.line(f"interrupted after epoch {len(history.epochs)}; continue with: ocula train --resume {run.path}")
        raise Interrupted(f"training interrupted; the last finished epoch is saved in {run.checkpoint}",
                          hint=f"continue with `ocula train --resume {run.path}`") from None
    except BaseException:  # stopped from outside (an on_epoch callback: tuning prunes so) or failed
        index.record(run.id, status="stopped")
        lease.release(run.path)  # another call in this process may resume it
        raise

    if state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    train_seconds = time.perf_counter() - train_began
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, run.weights)  # loads on any device
    best = {k: v for k, v in history.best.items() if k == "epoch" or k.startswith("validation:")}
    card = ModelCard.from_preprocessing(
        pre, labels=classes, arch=cfg.model, mode=cfg.mode, pretrained=weights_from,
        metrics={k: v for k, v in best.items() if k != "epoch"},
    )
    card.multi_label = multi
    card.image_ranges = typical_ranges([image_stats(cache.load(train_split.digests[i]))
                                        for i in _spread(len(train_split), RANGE_SAMPLE)])
    card.to_json(run.card)
    if multi:
        calibration = _thresholds(run, card, val_split, log)
    else:
        calibration = _calibrate(run, card, val_split, log, shifted=cfg.calibrate == "phone") \
            if cfg.calibrate != "none" else {"method": "none"}
    wall = time.perf_counter() - began
    write_json(run.metrics, {
        "epochs": history.epochs, "best": best, "wall_seconds": round(wall, 2),
        "train_seconds": round(train_seconds, 2),
        "train_images_per_second": round(images_seen / train_seconds, 2) if train_seconds else 0.0,
        "backbone_images_per_second": _mean(e.get("train_images_per_second") for e in history.epochs),
        "imbalance": imbalance_note, "split": how, "pretrained": not job.from_scratch, "calibration": calibration,
        "status": "completed",
    })
    index.record(run.id, status="completed", classes=len(classes), epochs=len(history.epochs),
                 val_accuracy=best.get("validation:accuracy"), wall_seconds=round(wall, 2))
    lease.release(run.path)
    second = "validation:mAP" if multi else "validation:top_k_accuracy"
    log.line(f"best epoch {best.get('epoch')}: validation:accuracy={best.get('validation:accuracy', 0):.4f} "
             f"{second}={best.get(second, 0):.4f} in {wall:.0f}s")
    # The same report `ocula evaluate` writes, for the validation set, from the saved artifacts alone
    # (on PyTorch: exporting first would cost more than scoring the validation images).
    assess(Predictor.from_run(run.path, backend="torch", max_pixels=None), list(zip(val_split.paths,
           _label_items(val_split))), run_dir=run, out=run.path, data=cfg.data, split="validation", top_k=cfg.top_k,
           log=log, metrics_name="evaluation.json", predictions_name="evaluation_predictions.jsonl",
           calibration=calibration)
    return Run(run.path)


def _spread(n: int, most: int) -> range:
    """At most ``most`` indices spread evenly over ``range(n)``."""
    return range(0, n, max(1, -(-n // most)))


def _thresholds(run: RunDir, card: ModelCard, val: Split, log: RunLog) -> dict[str, Any]:
    """Multi-label: each label's decision threshold, the one with the best F1 on the validation
    images (scored from the saved weights through the one inference path), into the card."""
    predictor = Predictor.from_run(run.path, backend="torch", max_pixels=None)
    probabilities, rows = [], []
    with log.progress("tuning thresholds", len(val)) as advance:
        for batch in predictor.stream(val.paths, batch_size=32):
            probabilities.append(batch.probabilities)
            rows.extend(batch.positions)
            advance(len(batch.positions) + len(batch.failed))
    p, y = np.concatenate(probabilities), val.labels[rows]
    card.thresholds = tune_thresholds(y, p)
    card.to_json(run.card)
    before = summarize_multilabel(y, p, card.labels)
    after = summarize_multilabel(y, p, card.labels, card.thresholds)
    log.line(f"thresholds tuned per label on {len(y)} validation images: micro F1 {before['micro_f1']:.3f} at 0.5 "
             f"-> {after['micro_f1']:.3f} (thresholds {min(card.thresholds):.2f} to {max(card.thresholds):.2f})")
    return {"method": "thresholds", "fitted_on": f"the validation split ({len(y)} images)",
            "thresholds": card.thresholds, "micro_f1_before": before["micro_f1"], "micro_f1_after": after["micro_f1"]}


def _calibrate(run: RunDir, card: ModelCard, val: Split, log: RunLog, *, shifted: bool) -> dict[str, Any]:
    """Fit the card's temperature on the validation images, scored from the saved weights through
    the one inference path, and write it into the card; what was fitted, on what, before and after.

    ``shifted`` (``--calibrate phone``) fits on copies of the validation images under mild
    phone-photo corruptions too (``corruptions.mild_copies``): a temperature fitted on clean
    validation photos alone is over-confident on photos taken another day (grocery: ECE 0.038 on
    test, 0.027 with the copies; BENCHMARKS.md)."""
    if len(val) < MIN_CALIBRATION_IMAGES:
        log.line(f"calibration skipped: {len(val)} validation images, at least {MIN_CALIBRATION_IMAGES} needed")
        return {"method": "none", "reason": f"{len(val)} validation images (at least {MIN_CALIBRATION_IMAGES} needed)"}
    predictor = Predictor.from_run(run.path, backend="torch", max_pixels=None)
    copies = min(len(MILD), max(2, SHIFTED_IMAGES // len(val))) if shifted else 0
    probabilities, labels, extra, extra_labels = [], [], [], []
    with log.progress("calibration", len(val)) as advance:
        for batch in predictor.stream(val.paths, batch_size=32):
            probabilities.append(batch.probabilities)
            labels.extend(val.labels[batch.positions].tolist())
            for position, prepared in zip(batch.positions, batch.prepared) if copies else ():
                extra.append(predictor.probabilities_of(mild_copies(prepared.array, position, copies)))
                extra_labels.extend([int(val.labels[position])] * copies)
            advance(len(batch.positions) + len(batch.failed))
    p, y = np.concatenate(probabilities), np.array(labels, dtype=np.int64)
    if extra:
        card.temperature = fit_temperature(np.concatenate([p, *extra]), np.array(labels + extra_labels, dtype=np.int64))
    else:
        card.temperature = fit_temperature(p, y)
    card.to_json(run.card)
    calibrated = rescale(p, card.temperature)
    fitted_on = f"the validation split ({len(y)} images)" + (
        f" and {len(extra_labels)} copies under mild phone-photo corruptions" if extra else "")
    result = {"method": "temperature", "temperature": round(card.temperature, 4), "fitted_on": fitted_on,
              "ece_before": round(calibration_of(y, p)["ece"], 4), "ece_after": round(calibration_of(y, calibrated)["ece"], 4),
              "log_loss_before": round(log_loss(y, p), 4), "log_loss_after": round(log_loss(y, calibrated), 4)}
    log.line(f"calibration: temperature {card.temperature:.3f} fitted on {len(y)} validation images"
             + (f" and {len(extra_labels)} copies under mild phone-photo corruptions" if extra else "")
             + f": validation ECE {result['ece_before']:.3f} -> {result['ece_after']:.3f}, "
             f"log loss {result['log_loss_before']:.3f} -> {result['log_loss_after']:.3f}")
    return result


def _prepare_data(cfg: TrainConfig, source: DataSource, val_source: DataSource | None, run: RunDir,
                  log: RunLog) -> tuple[list[str], Split, Split, str]:
    """Audit every file, skip the unusable ones (each listed), split, and map labels to indices."""
    val = (val_source.val or val_source.train) if val_source else source.val
    combined = DataSource(root=source.root, format=source.format, classes=source.classes,
                          train=source.train, val=val)
    total = len(combined.train) + len(val or [])
    with log.progress("auditing images", total) as advance:
        report = audit(combined, progress=lambda done, total: advance(1))
    report.to_json(run.audit)
    for problem in source.problems + (val_source.problems if val_source else []):
        log.warn(problem)
    for path, reason in sorted(report.unusable.items()):
        log.warn(f"skipped {path}: {reason}")
    for finding in report.findings:
        if finding.level == "error":
            log.warn(f"data audit error: {finding.message}")
    train = report.usable(combined.train)
    present = {name for s in train for name in s.names}
    classes = [c for c in source.classes if c in present]
    if len(classes) < 2:
        found = f"only the class {classes[0]!r}" if classes else "no usable images"
        raise DataError(f"{cfg.data} has {found}; a classifier needs at least two classes",
                        hint="add a folder of images for each class")
    if val is None:
        train, val = stratified_split(train, cfg.val_fraction, cfg.seed)
        how = f"stratified {cfg.val_fraction:.0%} validation split, seed {cfg.seed}"
    else:
        val = report.usable(val)
        how = "validation set given"
    unknown_labels = sorted({name for s in val for name in s.names} - present)
    if unknown_labels:
        log.warn(f"validation labels absent from training are left out: {unknown_labels}")
        val = [_known(s, present) for s in val if any(name in present for name in s.names)]
    if not val:
        raise DataError("no usable validation images", hint="give --val DATA or more images per class")
    index = {c: i for i, c in enumerate(classes)}
    multi = cfg.multi_label or source.multi_label or bool(val_source and val_source.multi_label)

    def to_split(samples: list) -> Split:
        if multi:
            labels = np.zeros((len(samples), len(classes)), dtype=np.uint8)
            for row, s in enumerate(samples):
                labels[row, [index[name] for name in s.names]] = 1
        else:
            labels = np.array([index[s.label] for s in samples], dtype=np.int64)
        return Split(paths=[s.path for s in samples], digests=[report.digests[s.path] for s in samples], labels=labels)

    return classes, to_split(train), to_split(val), how


def _prior_bias(model: nn.Module, labels: np.ndarray) -> None:
    """Start a fresh multi-label classifier at each label's training frequency (logit of it), as
    the focal-loss paper does: with many labels each rare, the first epochs otherwise go into
    learning that most labels are absent."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear) and head.bias is not None:
        share = np.clip(labels.mean(0), 1e-3, 1 - 1e-3)
        with torch.no_grad():
            head.bias.copy_(torch.from_numpy(np.log(share / (1 - share))).float())


def _targets(split: Split) -> torch.Tensor:
    """Training targets: class indices, or (multi-label) N x K floats for the binary cross-entropy."""
    return torch.from_numpy(split.labels.astype(np.float32) if split.multi_label else split.labels)


def _label_items(split: Split) -> list[Any]:
    """What ``assess`` takes per image: the class index, or (multi-label) the tuple of indices."""
    if split.multi_label:
        return [tuple(np.flatnonzero(row).tolist()) for row in split.labels]
    return split.labels.tolist()


def _known(sample: Sample, present: set[str]) -> Sample:
    """A validation sample without the labels training never shows (multi-label: the rest stay)."""
    return sample if not sample.labels else Sample.multi(sample.path, [n for n in sample.labels if n in present])


def _mean(values: Any) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 2) if values else None


def _without(split: Split, paths: dict[str, str]) -> Split:
    keep = [i for i, p in enumerate(split.paths) if p not in paths]
    return Split([split.paths[i] for i in keep], [split.digests[i] for i in keep], split.labels[keep])


def _rows(split: Split) -> list[list[Any]]:
    """split.json rows: path, class index (multi-label: the list of class indices), content hash."""
    if split.multi_label:
        return [[p, np.flatnonzero(y).tolist(), d] for p, y, d in zip(split.paths, split.labels, split.digests)]
    return [[p, int(y), d] for p, y, d in zip(split.paths, split.labels, split.digests)]


def _split(rows: list[list[Any]], classes: int) -> Split:
    if rows and isinstance(rows[0][1], list):
        labels = np.zeros((len(rows), classes), dtype=np.uint8)
        for i, row in enumerate(rows):
            labels[i, row[1]] = 1
    else:
        labels = np.array([r[1] for r in rows], dtype=np.int64)
    return Split(paths=[r[0] for r in rows], digests=[r[2] for r in rows], labels=labels)


def _loss(cfg: TrainConfig, train: Split, classes: int) -> tuple[nn.Module, torch.Tensor | None, str]:
    """(the loss, per-image sampling weights or None, the sentence the run prints about it):
    cross-entropy weighted for imbalance, or (multi-label) binary cross-entropy per label."""
    if train.multi_label:
        per_image = float(train.labels.sum(1).mean())
        return nn.BCEWithLogitsLoss(), None, (f"multi-label: {classes} labels, {per_image:.2f} per training image "
                                              "on average; binary cross-entropy per label, thresholds tuned on validation")
    balance, class_weights, note = _imbalance(cfg, np.bincount(train.labels, minlength=classes))
    criterion = nn.CrossEntropyLoss(weight=class_weights if balance == "weights" else None,
                                    label_smoothing=cfg.label_smoothing)
    return criterion, class_weights[train.labels] if balance == "sampler" else None, note


def _imbalance(cfg: TrainConfig, counts: np.ndarray) -> tuple[str, torch.Tensor, str]:
    """(handling, per-class weights, the sentence the run prints about it)."""
    ratio = counts.max() / max(counts.min(), 1)
    choice = cfg.imbalance
    if choice == "auto":
        choice = "weights" if ratio > cfg.imbalance_threshold else "none"
    weights = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
    said = {"weights": "class-weighted loss", "sampler": "class-balanced sampling", "none": "no reweighting"}
    why = f" (auto: above {cfg.imbalance_threshold:g}:1)" if cfg.imbalance == "auto" and choice != "none" else ""
    return choice, weights, f"class imbalance {ratio:.1f}:1 (largest/smallest class): {said[choice]}{why}"


def _optimizer(groups: list[dict[str, Any]], weight_decay: float) -> torch.optim.Optimizer:
    for g in groups:
        g["peak_lr"] = g["lr"]
    return torch.optim.AdamW(groups, weight_decay=weight_decay)


@dataclass
class Job:
    """What both training phases share."""

    cfg: TrainConfig
    model: nn.Module
    pre: Preprocessing
    cache: DecodeCache
    train: Split
    val: Split
    log: RunLog
    workers: int
    policy: Callable[[torch.Tensor], torch.Tensor]
    clean: Callable[[torch.Tensor], torch.Tensor]
    criterion: nn.Module
    sample_weights: torch.Tensor | None
    deadline: float | None
    from_scratch: bool  # batch norm must then learn its statistics
    device: Device = CPU
    end_epoch: Callable[..., bool] = lambda *args: False

    def images(self, split: Split, augmented: bool) -> CachedImages:
        return CachedImages(self.cache, split, self.policy if augmented else self.clean)

    def remaining(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.perf_counter()


def _head_phase(job: Job, kind: str, resume_from: dict[str, Any] | None) -> int:
    """Feature extraction once per view, then classifier epochs on the cached features."""
    cfg, log = job.cfg, job.log
    epochs = (cfg.epochs or DEFAULT_EPOCHS["head"]) if kind == "head" else cfg.head_epochs
    if epochs == 0:
        return 0
    features, classifier = features_and_head(job.model)
    job.model.eval()
    began = time.perf_counter()

    def extract_all(split: Split, augmented: bool, description: str) -> torch.Tensor:
        return extract(features, job.images(split, augmented), job.pre.normalize, batch_size=FEATURE_BATCH,
                       workers=job.workers, log=log, description=description, device=job.device)

    train_clean = extract_all(job.train, False, "features (clean view)")
    val_features = extract_all(job.val, False, "features (validation)")
    per_image = (time.perf_counter() - began) / (len(job.train) + len(job.val))
    extra = 0 if cfg.augment == "none" else min(epochs - 1, MAX_EXTRA_VIEWS if kind == "head" else 1)
    # keep at least half of what is left of a budget for the epochs that follow
    if job.deadline is not None:
        extra = max(0, min(extra, int(0.5 * job.remaining() / (per_image * len(job.train)))))
    views = [train_clean]
    for v in range(extra):
        torch.manual_seed(cfg.seed * 1000 + v + 1)  # the same views on resume
        views.append(extract_all(job.train, True, f"features (augmented view {v + 1}/{extra})"))
    log.line(f"head on cached features: {len(views)} view(s) per image, {per_image * 1000:.1f} ms/image")

    lr = cfg.lr or BASE_LR[kind] * (MULTI_LABEL_HEAD_LR if job.train.multi_label else 1)
    optimizer = _optimizer([{"params": list(classifier.parameters()), "lr": lr, "name": "head"}],
                           cfg.weight_decay)
    batch = min(cfg.batch_size, FEATURE_BATCH)
    start, step = 0, 0
    if resume_from is not None:
        optimizer.load_state_dict(resume_from["optimizer"])
        start, step = resume_from["phase_epoch"], resume_from["step"]
    generator = torch.Generator().manual_seed(cfg.seed)
    draws = HeadDraws(len(job.train), len(views), job.sample_weights, generator)
    for _ in range(start):  # replay the finished epochs' draws so a resumed run continues identically
        draws()
    done = 0
    for epoch, record, step in head_epochs(
        classifier, torch.stack(views), _targets(job.train), val_features, job.val.labels,
        epochs=epochs, start_epoch=start, optimizer=optimizer, step=step,
        total_steps=math.ceil(len(job.train) / batch) * epochs, criterion=job.criterion,
        drop_rate=cfg.drop_rate, batch_size=batch, top_k=cfg.top_k, draws=draws,
    ):
        done = epoch - start
        if job.end_epoch("head", epoch, record, optimizer, step, epochs) and kind == "head":
            break
    return len(job.train) * done


def _backbone_phase(job: Job, kind: str, last_n: int | None, num_classes: int,
                    resume_from: dict[str, Any] | None) -> int:
    """Epochs through the backbone: discriminative rates for fine-tuning, one-cycle schedule."""
    cfg, log, model = job.cfg, job.log, job.model
    base = cfg.lr or BASE_LR[kind]
    if kind == "finetune":
        groups = configure(model, "finetune", base / 2, discriminative=True)
    elif kind == "last":
        groups = configure(model, f"last-{last_n}", base, discriminative=True)
    else:
        groups = configure(model, "full", base)
    optimizer = _optimizer(groups, cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler = None
    if job.sample_weights is not None:
        sampler = WeightedRandomSampler(job.sample_weights, len(job.train), replacement=True, generator=generator)
    train_images = (CachedImages(job.cache, job.train, consistency_views(job.policy)) if cfg.consistency_weight
                    else job.images(job.train, True))
    pin = job.device.pin_memory
    train_batches = loader(train_images, cfg.batch_size, workers=job.workers, shuffle=True,
                           sampler=sampler, generator=generator, pin_memory=pin)
    val_batches = loader(job.images(job.val, False), FEATURE_BATCH, workers=job.workers, pin_memory=pin)
    start, step = 0, 0
    if resume_from is not None:
        optimizer.load_state_dict(resume_from["optimizer"])
        start, step, epochs = resume_from["phase_epoch"], resume_from["step"], resume_from["planned"]
        for g in optimizer.param_groups:
            g.setdefault("peak_lr", g["lr"])
    else:
        epochs = cfg.epochs or DEFAULT_EPOCHS[kind]
        if job.deadline is not None:
            per_image = measure_step_seconds(model, train_batches, normalize=job.pre.normalize,
                                             criterion=job.criterion, freeze_bn=not job.from_scratch,
                                             device=job.device)
            epoch_seconds = per_image * (len(job.train) + len(job.val) / 3)
            affordable = int(job.remaining() / max(epoch_seconds, 1e-9))
            if affordable < 1:
                log.warn("the time budget leaves no room for an epoch through the backbone; "
                         "keeping the model trained so far")
                return 0
            epochs = min(cfg.epochs or affordable, affordable)
        frozen = [name for name, _ in named_stage_groups(model)[:-1] if name not in {g["name"] for g in groups}]
        log.line(f"training the backbone for {epochs} epoch(s): "
                 + ", ".join(f"{g['name']} lr={g['lr']:.2g}" for g in groups[:1] + groups[-1:])
                 + (f"; {', '.join(frozen)} stay frozen" if frozen else "")
                 + (f"; consistency loss x{cfg.consistency_weight:g} (each image and two phone photos of it)"
                    if cfg.consistency_weight else ""))
    mixer = (lambda x, y: mix_batch(x, y, num_classes, cfg.mix, cfg.mix_alpha)) if cfg.mix != "none" else None
    erase = (lambda x: random_erasing(x, cfg.random_erasing)) if cfg.random_erasing > 0 else None
    seen, mark = 0, time.perf_counter()
    for epoch, record, step in backbone_epochs(
        model, train_batches, val_batches, normalize=job.pre.normalize, epochs=epochs, start_epoch=start,
        optimizer=optimizer, step=step, total_steps=epochs * len(train_batches), criterion=job.criterion,
        top_k=cfg.top_k, log=log, mixer=mixer, erase=erase, consistency=cfg.consistency_weight,
        freeze_bn=not job.from_scratch, device=job.device,
    ):
        seen += len(job.train)
        if job.end_epoch("backbone", epoch, record, optimizer, step, epochs):
            log.line(f"early stopping: no better validation accuracy for {cfg.patience} epochs")
            break
        now = time.perf_counter()
        epoch_seconds, mark = now - mark, now
        if job.remaining() < epoch_seconds and epoch < epochs:
            log.line("stopping: the time budget would be exceeded by another epoch")
            break
    return seen
