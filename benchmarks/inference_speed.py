"""``ocula evaluate --shift phone`` against ONNX Runtime alone, and against the eager path.

    .venv/bin/python benchmarks/inference_speed.py /tmp/ocula-runs/grocery-phone ../shared/data/grocery \
        --split test --out benchmarks/results/inference_speed.json

RUN is a run directory written by ``ocula train``; DATA any labelled data set ``ocula evaluate``
reads. In one process run, one after another (never two at once, so they never share the cores):

1. **ONNX Runtime alone**: the run's ``model/model.onnx`` (exported first if missing) in a plain
   ``onnxruntime.InferenceSession`` (all cores, full graph optimisation), fed batches of
   ``--batch-size`` images already decoded and cropped in memory: the engine's ceiling, with no
   decoding, corruption or bookkeeping. Best of three passes over ``--alone-images`` images.
2. **ocula** ``ocula evaluate RUN DATA --split S --shift phone --backend onnx`` as a user runs it
   (the console script, a child process, timed from outside; peak RSS from ``wait4``). Its
   metrics.json gives the clean pass's and the shift pass's images/s (scored images: every
   corrupted copy counts once).
3. **eager** the same command with ``--backend torch`` (the path every evaluation took before the
   one inference path): its accuracy and per-corruption figures must agree with ocula's within
   0.3 points on the same images (same seed, same sample). ``--skip-eager`` leaves it out.

Reported: images/s of each, the ratios to ONNX Runtime alone, wall time and peak RSS of each
command, and the largest accuracy differences. The JSON keeps the command line and versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path


from ocula.evaluate.job import SHIFT_IMAGES

OCULA = Path(sys.executable).with_name("ocula")


def alone(run: Path, sources: list[str], batch_size: int, images: int) -> dict:
    """Images/s of a bare ONNX Runtime session on pre-cropped batches (best of three passes)."""
    import onnxruntime as ort

    from ocula.inference import Predictor, cpu_count

    predictor = Predictor.from_run(run, backend="onnx", log=lambda m: print(m, file=sys.stderr))
    crops = predictor.images(sources[:images])
    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_count()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(run / "model" / "model.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: crops[:batch_size]})  # warm-up
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for i in range(0, len(crops), batch_size):
            session.run(None, {name: crops[i:i + batch_size]})
        best = min(best, time.perf_counter() - began)
    return {"images": len(crops), "batch_size": batch_size, "seconds": round(best, 2),
            "images_per_second": round(len(crops) / best, 1)}


def evaluate(run: Path, data: str, split: str, backend: str, out: Path, shift_images: int) -> dict:
    """``ocula evaluate`` as a child process: wall seconds, peak RSS and its metrics.json."""
    command = [str(OCULA), "evaluate", str(run), data, "--split", split, "--shift", "phone", "--backend", backend,
               "--shift-images", str(shift_images), "--out", str(out), "--quiet"]
    print("$", shlex.join(command), file=sys.stderr, flush=True)
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    stderr = process.stderr.read() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{stderr}")
    report = json.loads((out / "metrics.json").read_text())
    shift = report["robustness"]
    return {"command": shlex.join(command), "wall_seconds": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "engine": report["engine"], "clean_images_per_second": report["throughput"]["images_per_second"],
            "shift_images_per_second": shift["throughput"]["images_per_second"],
            "shift_scored_images": shift["throughput"]["scored_images"], "accuracy": report["summary"]["accuracy"],
            "shift_clean_accuracy": shift["clean_accuracy"], "mean_drop": shift["mean_drop"],
            "cells": {f"{name}/{severity}": accuracy for name, entry in shift["by_corruption"].items()
                      for severity, accuracy in zip(entry["severities"], entry["accuracy"])}}


def versions() -> dict:
    names = ("onnxruntime", "torch", "numpy", "pillow")
    return {name: metadata.version(name) for name in names} | {"python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=32, help="the evaluation's batch (ocula.evaluate.job.BATCH)")
    parser.add_argument("--alone-images", type=int, default=512)
    parser.add_argument("--shift-images", type=int, default=SHIFT_IMAGES, help="ocula evaluate's default")
    parser.add_argument("--skip-eager", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ocula-bench-inference"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inference_speed.json"))
    args = parser.parse_args()

    from ocula.data import load_source

    source = load_source(args.data)
    samples = getattr(source, args.split) or source.train
    result: dict = {"command": shlex.join([sys.executable, *sys.argv]), "date": dt.date.today().isoformat(),
                    "cpus": os.cpu_count(), "versions": versions(), "run": str(args.run), "data": args.data,
                    "split": args.split}
    result["onnxruntime_alone"] = alone(args.run, [s.path for s in samples], args.batch_size, args.alone_images)
    print("onnxruntime alone:", result["onnxruntime_alone"], file=sys.stderr, flush=True)
    result["ocula"] = evaluate(args.run, args.data, args.split, "onnx", args.work / "onnx", args.shift_images)
    ceiling = result["onnxruntime_alone"]["images_per_second"]
    result["ratios"] = {"shift_vs_alone": round(result["ocula"]["shift_images_per_second"] / ceiling, 3),
                        "clean_vs_alone": round(result["ocula"]["clean_images_per_second"] / ceiling, 3)}
    print("ocula:", {k: v for k, v in result["ocula"].items() if k != "cells"}, result["ratios"], file=sys.stderr)
    if not args.skip_eager:
        eager = evaluate(args.run, args.data, args.split, "torch", args.work / "torch", args.shift_images)
        result["eager"] = eager
        cells = result["ocula"]["cells"]
        result["agreement_points"] = {
            "accuracy": round(abs(eager["accuracy"] - result["ocula"]["accuracy"]) * 100, 3),
            "largest_cell": round(max(abs(eager["cells"][k] - cells[k]) for k in cells) * 100, 3),
            "mean_drop": round(abs(eager["mean_drop"] - result["ocula"]["mean_drop"]) * 100, 3)}
        result["ratios"]["speedup_vs_eager_wall"] = round(eager["wall_seconds"] / result["ocula"]["wall_seconds"], 2)
        print("eager:", {k: v for k, v in eager.items() if k != "cells"}, result["agreement_points"], file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
