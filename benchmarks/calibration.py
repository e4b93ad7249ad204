"""Calibration on a split the temperature was not fitted on: ECE, log loss and accuracy, before and after.

    .venv/bin/python benchmarks/calibration.py /tmp/ocula-runs/grocery-phone2 \
        --data ../shared/data/grocery --split test --out benchmarks/results/calibration_grocery.json

Each RUN is scored on every image of ``--split`` through ``ocula.Predictor`` (ONNX Runtime, the
card's temperature inside the graph, as `serve`, `batch` and `evaluate` score). "Before" is the
same probabilities with the temperature taken out again (``rescale(p, 1 / T)``: exact, since the
temperature divides the logits), so both columns come from one pass over the same images.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from ocula.data import load_source
from ocula.evaluate.calibration import rescale
from ocula.evaluate.metrics import calibration, log_loss
from ocula.inference import Predictor


def figures(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    return {"accuracy": round(float(np.mean(probs.argmax(axis=1) == labels)), 4),
            "ece": round(calibration(labels, probs)["ece"], 4),
            "mean_confidence": round(float(probs.max(axis=1).mean()), 4),
            "log_loss": round(log_loss(labels, probs), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/calibration.json"))
    args = parser.parse_args()
    source = load_source(args.data)
    samples = getattr(source, args.split) or []
    if not samples:
        sys.exit(f"{args.data} has no {args.split} split")
    result: dict = {"command": shlex.join([sys.executable, *sys.argv]), "date": dt.date.today().isoformat(),
                    "cpus": os.cpu_count(), "data": args.data, "split": args.split, "runs": {}}
    for run in args.runs:
        predictor = Predictor.from_run(run, backend="onnx")
        index = {name: i for i, name in enumerate(predictor.labels)}
        kept = [s for s in samples if s.label in index]
        paths = [s.path for s in kept]
        labels, rows = [], []
        for batch in predictor.stream(paths):
            rows.append(batch.probabilities)
            labels.extend(index[kept[i].label] for i in batch.positions)
        probs, labels = np.concatenate(rows), np.array(labels)
        temperature = predictor.card.temperature
        before, after = figures(labels, rescale(probs, 1 / temperature)), figures(labels, probs)
        result["runs"][run.name] = {"temperature": temperature, "images": len(labels), "before": before,
                                    "after": after}
        print(f"{run.name}: T={temperature:.3f} on {len(labels)} {args.split} images; before {before}; "
              f"after {after}", file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
