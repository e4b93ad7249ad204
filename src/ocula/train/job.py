"""``ocula.train``: one training run from data folder to run directory, top to bottom.

audit -> split -> model -> decode cache -> (head on cached features) -> (backbone epochs)
-> best weights, card, metrics, index. Each epoch is checkpointed, so ``resume`` continues an
interrupted run and Ctrl-C loses at most the epoch in progress.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from ocula.config import TrainConfig, parse_duration
from ocula.data import DataSource, audit, load_source, stratified_split
from ocula.data.augment import get_policy, mix_batch, random_erasing
from ocula.data.decode_cache import DecodeCache, default_cache_dir
from ocula.errors import DataError, Interrupted, UsageError
from ocula.models import ModelCard, configure, create_model, features_and_head, parse_mode
from ocula.storage import RunDir, RunIndex, new_run_id, read_json, read_yaml, write_json, write_yaml
from ocula.train.batches import CachedImages, Split, cpu_budget, loader
from ocula.train.features import extract, head_epochs
from ocula.train.log import RunLog
from ocula.train.loop import backbone_epochs, measure_step_seconds
from ocula.train.run import Run
from ocula.train.schedule import History, epoch_line

# Proven defaults per mode (AdamW peak rates and epochs), after fastai's fine_tune recipe:
# head rate base_lr, then base_lr / 2 spread down to base_lr / 200 for the earliest layers.
BASE_LR = {"head": 2e-3, "finetune": 2e-3, "last": 1e-3, "full": 3e-3}
DEFAULT_EPOCHS = {"head": 10, "finetune": 5, "last": 8, "full": 30}
MAX_EXTRA_VIEWS = 4
FEATURE_BATCH = 64


def train(data: str | Path | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          **options: Any) -> Run:
    """Train a classifier on ``data`` (any layout ``ocula data check`` reads) and return its Run.

    Options are the fields of :class:`ocula.config.TrainConfig` (``budget`` may be given as
    '10m'). ``resume`` continues the run directory of an interrupted run instead.
    """
    began = time.perf_counter()
    log = RunLog(quiet=quiet)
    if "budget" in options:
        options["budget_seconds"] = parse_duration(options.pop("budget"))
    if resume is not None:
        run = RunDir.open(resume, need=("config", "checkpoint", "split"))
        cfg = TrainConfig.from_dict(read_yaml(run.config))
        checkpoint = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
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
    threads, workers = cpu_budget(cfg.threads)
    torch.set_num_threads(threads)
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
    index.record(run.id, path=str(run.path.resolve()), status="running", data=cfg.data, model=cfg.model,
                 mode=cfg.mode, augment=cfg.augment)

    if checkpoint is None:
        classes, train_split, val_split, how = _prepare_data(cfg, source, val_source, run, log)
        write_json(run.split, {"how": how, "classes": classes, "train": _rows(train_split),
                               "val": _rows(val_split)})
    else:
        saved = read_json(run.split)
        classes, how = saved["classes"], saved["how"]
        train_split, val_split = _split(saved["train"]), _split(saved["val"])

    model, pre, weights_from = create_model(
        cfg.model, len(classes), pretrained="none" if checkpoint else cfg.pretrained,
        drop_rate=cfg.drop_rate, image_size=cfg.image_size, labels=classes,
    )
    size = pre.input_size
    cache = DecodeCache(Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(), pre.resize_short_side)
    log.line(f"model {cfg.model} ({weights_from}), mode {cfg.mode}, image size {size}, "
             f"{len(classes)} classes, {len(train_split)} train / {len(val_split)} validation images ({how})")
    with log.progress("decoding images once", len(train_split) + len(val_split)) as advance:
        cache.ensure(list(zip(train_split.paths + val_split.paths, train_split.digests + val_split.digests)),
                     progress=lambda done, total: advance(1))

    counts = np.bincount(train_split.labels, minlength=len(classes))
    class_weights, imbalance_note = _imbalance(cfg, counts, classes)
    log.line(imbalance_note)
    criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=cfg.label_smoothing)
    policy, clean = get_policy(cfg.augment, size), v2.CenterCrop(size)  # the cache already resized
    val_batches = loader(CachedImages(cache, val_split, clean), FEATURE_BATCH, workers=workers)
    deadline = began + cfg.budget_seconds if cfg.budget_seconds else None
    history = History(patience=cfg.patience, min_epochs=cfg.min_epochs)
    state: dict[str, Any] = {"best_model": None, "phase": None, "phase_epoch": 0, "step": 0}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        history.epochs, history.best = checkpoint["history"]["epochs"], checkpoint["history"]["best"]
        state.update(best_model=checkpoint["best_model"], phase=checkpoint["phase"],
                     phase_epoch=checkpoint["phase_epoch"], step=checkpoint["step"])
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
        return phase != "head" and history.should_stop()

    train_began = time.perf_counter()
    images_seen = 0
    try:
        if kind in ("head", "finetune") and state["phase"] in (None, "head"):
            images_seen += _head_phase(
                cfg, kind, model, pre, cache, train_split, val_split, criterion, policy, clean, workers,
                log, deadline, checkpoint if state["phase"] == "head" else None, end_epoch,
            )
        if kind != "head":
            images_seen += _backbone_phase(
                cfg, kind, last_n, model, pre, cache, train_split, val_batches, criterion, policy, workers,
                log, deadline, checkpoint if state["phase"] == "backbone" else None, end_epoch, len(classes),
            )
    except KeyboardInterrupt:
        index.record(run.id, status="interrupted")
        log.line(f"interrupted after epoch {len(history.epochs)}; continue with: ocula train --resume {run.path}")
        raise Interrupted(f"training interrupted; the last finished epoch is saved in {run.checkpoint}",
                          hint=f"continue with `ocula train --resume {run.path}`") from None

    if state["best_model"] is not None:
        model.load_state_dict(state["best_model"])
    train_seconds = time.perf_counter() - train_began
    torch.save(model.state_dict(), run.weights)
    best = {k: v for k, v in history.best.items() if k == "epoch" or k.startswith("validation:")}
    ModelCard.from_preprocessing(
        pre, labels=classes, arch=cfg.model, mode=cfg.mode, pretrained=weights_from,
        metrics={k: v for k, v in best.items() if k != "epoch"},
    ).to_json(run.card)
    wall = time.perf_counter() - began
    write_json(run.metrics, {
        "epochs": history.epochs, "best": best, "wall_seconds": round(wall, 2),
        "train_seconds": round(train_seconds, 2),
        "train_images_per_second": round(images_seen / train_seconds, 2) if train_seconds else 0.0,
        "backbone_images_per_second": _mean(e.get("train_images_per_second") for e in history.epochs),
        "imbalance": imbalance_note, "split": how, "status": "completed",
    })
    index.record(run.id, status="completed", classes=len(classes), epochs=len(history.epochs),
                 val_accuracy=best.get("validation:accuracy"), wall_seconds=round(wall, 2))
    log.line(f"best epoch {best.get('epoch')}: validation:accuracy={best.get('validation:accuracy', 0):.4f} "
             f"validation:top_k_accuracy={best.get('validation:top_k_accuracy', 0):.4f} "
             f"in {wall:.0f}s")
    return Run(run.path)


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
    for path, reason in sorted(report.unusable.items()):
        log.warn(f"skipped {path}: {reason}")
    for finding in report.findings:
        if finding.level == "error":
            log.warn(f"data audit error: {finding.message}")
    train = report.usable(combined.train)
    present = {s.label for s in train}
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
    unknown_labels = sorted({s.label for s in val} - present)
    if unknown_labels:
        log.warn(f"validation images of classes absent from training are left out: {unknown_labels}")
        val = [s for s in val if s.label in present]
    if not val:
        raise DataError("no usable validation images", hint="give --val DATA or more images per class")
    index = {c: i for i, c in enumerate(classes)}

    def to_split(samples: list) -> Split:
        return Split(paths=[s.path for s in samples], digests=[report.digests[s.path] for s in samples],
                     labels=np.array([index[s.label] for s in samples], dtype=np.int64))

    return classes, to_split(train), to_split(val), how


def _mean(values: Any) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 2) if values else None


def _rows(split: Split) -> list[list[Any]]:
    return [[p, int(y), d] for p, y, d in zip(split.paths, split.labels, split.digests)]


def _split(rows: list[list[Any]]) -> Split:
    return Split(paths=[r[0] for r in rows], digests=[r[2] for r in rows],
                 labels=np.array([r[1] for r in rows], dtype=np.int64))


def _imbalance(cfg: TrainConfig, counts: np.ndarray, classes: list[str]) -> tuple[torch.Tensor | None, str]:
    ratio = counts.max() / max(counts.min(), 1)
    choice = cfg.imbalance
    if choice == "auto":
        choice = "weights" if ratio > cfg.imbalance_threshold else "none"
    if choice in ("weights", "sampler"):
        # Balanced sampling and weighted loss are equivalent in expectation; the loss weights keep
        # every image in every epoch, which matters with few images.
        weights = counts.sum() / (len(classes) * np.maximum(counts, 1))
        return (torch.tensor(weights, dtype=torch.float32),
                f"class imbalance {ratio:.1f}:1 (largest/smallest class): class-weighted loss on")
    return None, f"class imbalance {ratio:.1f}:1 (largest/smallest class): no reweighting"


def _optimizer(groups: list[dict[str, Any]], weight_decay: float) -> torch.optim.Optimizer:
    for g in groups:
        g["peak_lr"] = g["lr"]
    return torch.optim.AdamW(groups, weight_decay=weight_decay)


def _head_phase(cfg, kind, model, pre, cache, train_split, val_split, criterion, policy, clean, workers, log,
                deadline, checkpoint, end_epoch) -> int:
    """Feature extraction once per view, then classifier epochs on the cached features."""
    epochs = (cfg.epochs or DEFAULT_EPOCHS["head"]) if kind == "head" else cfg.head_epochs
    if epochs == 0:
        return 0
    features, classifier = features_and_head(model)
    model.eval()
    began = time.perf_counter()
    common = {"batch_size": FEATURE_BATCH, "workers": workers, "log": log}
    train_clean = extract(features, CachedImages(cache, train_split, clean), pre.normalize,
                          description="features (clean view)", **common)
    val_features = extract(features, CachedImages(cache, val_split, clean), pre.normalize,
                           description="features (validation)", **common)
    per_image = (time.perf_counter() - began) / (len(train_split) + len(val_split))
    extra = 0 if cfg.augment == "none" else min(epochs - 1, MAX_EXTRA_VIEWS if kind == "head" else 1)
    if deadline is not None and extra:
        affordable = int(0.5 * (deadline - time.perf_counter()) / (per_image * len(train_split)))
        extra = max(0, min(extra, affordable))
    views = [train_clean]
    for v in range(extra):
        torch.manual_seed(cfg.seed * 1000 + v + 1)  # the same views on resume
        views.append(extract(features, CachedImages(cache, train_split, policy), pre.normalize,
                             description=f"features (augmented view {v + 1}/{extra})", **common))
    log.line(f"head on cached features: {len(views)} view(s) per image, {per_image * 1000:.1f} ms/image")

    lr = cfg.lr or BASE_LR[kind]
    optimizer = _optimizer([{"params": list(classifier.parameters()), "lr": lr, "name": "head"}],
                           cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_split) / FEATURE_BATCH)
    start, step = 0, 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        start, step = checkpoint["phase_epoch"], checkpoint["step"]
    generator = torch.Generator().manual_seed(cfg.seed)
    for _ in range(start):  # replay the draws of the finished epochs so a resumed run continues identically
        torch.randint(len(views), (len(train_split),), generator=generator)
        torch.randperm(len(train_split), generator=generator)
    labels = torch.from_numpy(train_split.labels)
    done = 0
    for epoch, record, step in head_epochs(
        classifier, torch.stack(views), labels, val_features, val_split.labels, epochs=epochs,
        start_epoch=start, optimizer=optimizer, step=step, total_steps=steps_per_epoch * epochs,
        criterion=criterion, drop_rate=cfg.drop_rate, batch_size=FEATURE_BATCH, top_k=cfg.top_k,
        generator=generator,
    ):
        done = epoch - start
        if end_epoch("head", epoch, record, optimizer, step, epochs) and kind == "head":
            break
    return len(train_split) * done


def _backbone_phase(cfg, kind, last_n, model, pre, cache, train_split, val_batches, criterion, policy,
                    workers, log, deadline, checkpoint, end_epoch, num_classes) -> int:
    """Epochs through the backbone: discriminative rates for fine-tuning, one-cycle schedule."""
    base = cfg.lr or BASE_LR[kind]
    if kind == "finetune":
        groups = configure(model, "full", base / 2, discriminative=True)
    elif kind == "last":
        groups = configure(model, f"last-{last_n}", base, discriminative=True)
    else:
        groups = configure(model, "full", base)
    model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(groups, cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    train_batches = loader(CachedImages(cache, train_split, policy), cfg.batch_size, workers=workers,
                           shuffle=True, generator=generator)
    start, step = 0, 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        start, step, epochs = checkpoint["phase_epoch"], checkpoint["step"], checkpoint["planned"]
        for g in optimizer.param_groups:
            g.setdefault("peak_lr", g["lr"])
    else:
        epochs = cfg.epochs or DEFAULT_EPOCHS[kind]
        if deadline is not None:
            per_image = measure_step_seconds(model, train_batches, normalize=pre.normalize, criterion=criterion)
            epoch_seconds = per_image * (len(train_split) + len(val_batches.dataset) / 3)
            affordable = int((deadline - time.perf_counter()) / max(epoch_seconds, 1e-9))
            if affordable < 1:
                log.warn("the time budget leaves no room for an epoch through the backbone; "
                         "keeping the model trained so far")
                return 0
            epochs = min(cfg.epochs or affordable, affordable)
        log.line(f"training the backbone for {epochs} epoch(s): "
                 + ", ".join(f"{g['name']} lr={g['lr']:.2g}" for g in groups[:1] + groups[-1:]))
    mixer = (lambda x, y: mix_batch(x, y, num_classes, cfg.mix, cfg.mix_alpha)) if cfg.mix != "none" else None
    erase = (lambda x: random_erasing(x, cfg.random_erasing)) if cfg.random_erasing > 0 else None
    total_steps = epochs * len(train_batches)
    seen, mark = 0, time.perf_counter()
    for epoch, record, step in backbone_epochs(
        model, train_batches, val_batches, normalize=pre.normalize, epochs=epochs, start_epoch=start,
        optimizer=optimizer, step=step, total_steps=total_steps, criterion=criterion, top_k=cfg.top_k,
        log=log, mixer=mixer, erase=erase,
    ):
        seen += len(train_split)
        if end_epoch("backbone", epoch, record, optimizer, step, epochs):
            log.line(f"early stopping: no better validation accuracy for {cfg.patience} epochs")
            break
        now = time.perf_counter()
        epoch_seconds, mark = now - mark, now
        if deadline is not None and now + epoch_seconds > deadline and epoch < epochs:
            log.line("stopping: the time budget would be exceeded by another epoch")
            break
    return seen
