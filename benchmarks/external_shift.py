"""Robustness on corruptions ocula did not write: the ImageNet-C suite (Hendrycks & Dietterich, 2019).

    pip install imagecorruptions   # the published implementation (benchmarks only, not a dependency)
    .venv/bin/python benchmarks/external_shift.py /tmp/ocula-runs/grocery-none /tmp/ocula-runs/grocery-phone \
        --data ../shared/data/grocery --split test --images 200 --out benchmarks/results/external_shift.json

Each RUN is a run directory written by ``ocula train`` (the same data, different ``--augment``).
A seeded sample of ``--images`` images of the split is decoded and centre-cropped once through
the first run's ``Predictor`` (every run here shares the card's preprocessing: checked), as
ImageNet-C does (resize, centre crop 224, then corrupt). Each of the 15 corruptions of the
``imagecorruptions`` package at each severity 1-5 is applied once, seeded per image, and the
same corrupted images are scored by every run on ONNX Runtime. Reported per run: clean accuracy
on the sample, accuracy per corruption and severity, the mean drop (clean minus corrupted,
averaged over the 75 cells), and, when ``RUN/evaluations/<split>-phone/metrics.json`` exists,
``ocula evaluate --shift phone``'s own estimate of accuracy under shift and its error against the
measured mean.

``--tta`` measures test-time augmentation under the same shift: the corruptions are applied to
the whole resized image instead (before the crop, so the corner crops see them too), and every
run is scored twice on the same corrupted images, centre crop alone and ``--tta``'s four views
(reported as ``RUN+tta``).

``imagecorruptions`` 1.1.2 predates NumPy 2, scikit-image 0.19's ``channel_axis`` and
setuptools 81: three aliases (``np.float_``, ``gaussian(multichannel=)`` and
``pkg_resources.resource_filename``) are restored below; the corruptions' code and parameters
are the package's own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

if not hasattr(np, "float_"):  # removed in NumPy 2.0; imagecorruptions' fog still uses it
    np.float_ = np.float64  # type: ignore[attr-defined]


def _suite():
    try:
        import pkg_resources  # noqa: F401 - imagecorruptions finds its frost images with it
    except ImportError:  # setuptools >= 81 no longer ships it: the one function the package calls
        import importlib.util
        import types

        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda module, name: str(  # the file beside the module, as pkg_resources does
            Path(importlib.util.find_spec(module).origin).parent / name)
        sys.modules["pkg_resources"] = shim
    try:
        import imagecorruptions
        import imagecorruptions.corruptions as corruptions
        import skimage.filters
    except ImportError:
        sys.exit("this benchmark needs the ImageNet-C implementation: pip install imagecorruptions")
    gaussian = skimage.filters.gaussian

    def compatible(image, sigma=1, *args, multichannel=None, **kwargs):  # scikit-image >= 0.19 spells it channel_axis
        if multichannel is not None:
            kwargs.setdefault("channel_axis", -1 if multichannel else None)
        return gaussian(image, sigma, *args, **kwargs)

    corruptions.gaussian = compatible
    return imagecorruptions


def corrupted(suite, images: list[np.ndarray], name: str, severity: int, seed: int) -> tuple[list[np.ndarray], float]:
    """HWC uint8 images -> the same images under one corruption (seeded per image), and the seconds it took."""
    began, out = time.perf_counter(), []
    for i, image in enumerate(images):
        np.random.seed(seed * 1_000_003 + i * 101 + severity)  # the package draws from NumPy's global generator
        result = np.asarray(suite.corrupt(image, corruption_name=name, severity=severity), np.uint8)
        out.append(np.ascontiguousarray(result[: image.shape[0], : image.shape[1]]))
    return out, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--corruptions", nargs="+", default=None, help="default: the 15 ImageNet-C corruptions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tta", action="store_true", help="corrupt the resized images; score each run also with --tta")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/external_shift.json"))
    args = parser.parse_args()
    suite = _suite()

    from ocula.data import load_source
    from ocula.inference import Predictor

    predictors = [Predictor.from_run(run, backend="onnx", log=lambda m: print(m, file=sys.stderr)) for run in args.runs]
    first = predictors[0]
    if any(p.card.preprocessing != first.card.preprocessing or p.labels != first.labels for p in predictors):
        sys.exit("the runs must share preprocessing and labels (train them on the same data and model)")
    source = load_source(args.data)
    samples = sorted(getattr(source, args.split) or source.train, key=lambda s: s.path)
    index = {name: i for i, name in enumerate(first.labels)}
    samples = [s for s in samples if s.label in index]
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.choice(len(samples), size=min(args.images, len(samples)), replace=False))
    paths = [samples[i].path for i in chosen]
    labels = np.array([index[samples[i].label] for i in chosen])
    if args.tta:  # the resized images, which the four views crop
        crops = [first.prepare(Path(path).read_bytes()).array for path in paths]
        predictors = [q for p in predictors for q in (p, p.with_tta(True))]
        args.runs = [r for run in args.runs for r in (run, run.with_name(run.name + "+tta"))]
    else:  # ImageNet-C's protocol: the centre crop is corrupted
        crops = [crop.transpose(1, 2, 0) for crop in first.images(paths)]
    if len(crops) != len(paths):
        sys.exit(f"{len(paths) - len(crops)} sampled images do not decode; run `ocula data check`")
    names = args.corruptions or suite.get_corruption_names("common")

    def accuracy(predictor: Predictor, images: list[np.ndarray]) -> float:
        rows = np.concatenate([predictor.probabilities_of(images[i:i + 32]) for i in range(0, len(images), 32)])
        return float(np.mean(rows.argmax(axis=1) == labels))

    clean = [accuracy(p, crops) for p in predictors]
    cells: list[dict] = [{} for _ in predictors]
    began = time.perf_counter()
    todo = [(name, severity) for name in names for severity in args.severities]
    # One thread corrupts the next cell (NumPy's global generator stays seeded) while the model scores this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(corrupted, suite, crops, *todo[0], args.seed)
        for position, (name, severity) in enumerate(todo):
            images, made = pending.result()
            if position + 1 < len(todo):
                pending = pool.submit(corrupted, suite, crops, *todo[position + 1], args.seed)
            for k, predictor in enumerate(predictors):
                cells[k][f"{name}/{severity}"] = accuracy(predictor, images)
            print(f"{name} severity {severity}: " + "  ".join(f"{run.name} {cells[k][f'{name}/{severity}']:.3f}"
                  for k, run in enumerate(args.runs)) + f"  (corrupting {made:.1f} s)", file=sys.stderr, flush=True)
    result: dict = {"command": shlex.join([sys.executable, *sys.argv]), "date": dt.date.today().isoformat(),
                    "cpus": os.cpu_count(), "data": args.data, "split": args.split, "images": len(paths),
                    "seed": args.seed, "tta": args.tta, "corrupted": "resized image" if args.tta else "centre crop",
                    "corruptions": names, "severities": args.severities,
                    "seconds": round(time.perf_counter() - began, 1),
                    "standard_error_per_cell": round(float(np.sqrt(0.25 / len(paths))), 4), "runs": {}}
    for k, run in enumerate(args.runs):
        mean = float(np.mean(list(cells[k].values())))
        by = {name: round(float(np.mean([cells[k][f"{name}/{s}"] for s in args.severities])), 4) for name in names}
        entry = {"clean_accuracy": round(clean[k], 4), "mean_accuracy": round(mean, 4),
                 "mean_drop": round(clean[k] - mean, 4), "by_corruption": by,
                 "cells": {key: round(v, 4) for key, v in cells[k].items()}}
        tta = run.name.endswith("+tta")  # its estimate is `ocula evaluate --shift phone --tta`'s
        estimate = (run.with_name(run.name[:-4]) if tta else run) / "evaluations" / (
            f"{args.split}-phone" + ("-tta" if tta else "")) / "metrics.json"
        if estimate.exists():
            robustness = json.loads(estimate.read_text()).get("robustness") or {}
            if robustness:
                entry["ocula_shift_estimate"] = {"mean_accuracy": robustness["mean_accuracy"],
                                                 "clean_accuracy": robustness["clean_accuracy"],
                                                 "error_points": round((robustness["mean_accuracy"] - mean) * 100, 2)}
        result["runs"][run.name] = entry
        print(f"{run.name}: clean {clean[k]:.3f}, ImageNet-C mean {mean:.3f}, drop {clean[k] - mean:.3f}"
              + (f"; ocula's estimate {entry['ocula_shift_estimate']['mean_accuracy']:.3f}"
                 if "ocula_shift_estimate" in entry else ""), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
