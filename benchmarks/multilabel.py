"""Multi-label on real photos: grocery composites with two products each, a multi-label model
against a single-label model trained on the same images.

    .venv/bin/python benchmarks/multilabel.py ../shared/data/grocery --work /tmp/ocula-multilabel \
        --out benchmarks/results/multilabel_grocery.json

Each composite puts the central vertical halves of two grocery photos of different coarse
classes side by side (224 x 224; labels = both coarse classes, ``milk|juice``), from the photos
of one split of grocery's manifests: ``--train`` composites from ``train.txt``, ``--val`` from
``val.txt``, ``--test`` from ``test.txt``, seeded. Written as one CSV manifest with a split
column, so ``ocula train`` reads it as multi-label data. Two runs on identical images and
recipe (``--mode head``): the multi-label one, and a single-label one that sees only the
first label of each composite (what a tool without multi-label support forces). Both are
scored on the test composites: mAP of their probabilities against both labels, and F1 of the
labels each answers with (multi-label: the card's thresholds; single-label: its top class).
``--asl`` adds a third run, multi-label with the asymmetric loss (Ridnik et al., 2021: gamma-
4, gamma+ 0, clip 0.05) in place of ocula's binary cross-entropy, to measure which is better.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import ocula
from ocula.data import load_source
from ocula.evaluate.multilabel import summarize_multilabel
from ocula.inference import Predictor

SIDE = 224


def _half(path: str) -> Image.Image:
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = SIDE / min(image.size)
        image = image.resize((max(SIDE, round(image.width * scale)), max(SIDE, round(image.height * scale))))
        left, top = (image.width - SIDE // 2) // 2, (image.height - SIDE) // 2
        return image.crop((left, top, left + SIDE // 2, top + SIDE))


def _composites(samples: list, count: int, split: str, folder: Path, rng: np.random.Generator) -> list[list[str]]:
    rows = []
    for i in range(count):
        while True:
            a, b = rng.choice(len(samples), 2, replace=False)
            if samples[a].label != samples[b].label:
                break
        canvas = Image.new("RGB", (SIDE, SIDE))
        canvas.paste(_half(samples[a].path), (0, 0))
        canvas.paste(_half(samples[b].path), (SIDE // 2, 0))
        name = f"{split}_{i:05d}.jpg"
        canvas.save(folder / name, quality=92)
        rows.append([name, samples[a].label, samples[b].label, split])
    return rows


def _score(run: Path, data: Path, rows: list[list[str]]) -> dict:
    predictor = Predictor.from_run(run, backend="onnx")
    probs = np.concatenate([batch.probabilities for batch in predictor.stream([str(data / r[0]) for r in rows])])
    index = {name: i for i, name in enumerate(predictor.labels)}
    truth = np.zeros((len(rows), len(predictor.labels)), dtype=np.uint8)
    for i, row in enumerate(rows):
        truth[i, [index[name] for name in row[1:3] if name in index]] = 1
    if predictor.card.multi_label:
        summary = summarize_multilabel(truth, probs, predictor.labels, predictor.card.decision_thresholds())
    else:  # its answer is its top class: one label per composite
        top = np.zeros_like(probs)
        top[np.arange(len(probs)), probs.argmax(1)] = 1.0
        summary = summarize_multilabel(truth, probs, predictor.labels, [0.5] * len(predictor.labels))
        answered = summarize_multilabel(truth, top, predictor.labels, [0.5] * len(predictor.labels))
        for key in ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "accuracy", "hamming_loss",
                    "predicted_cardinality"):
            summary[key] = answered[key]
    keep = ("mAP", "micro_precision", "micro_recall", "micro_f1", "macro_f1", "accuracy", "hamming_loss",
            "cardinality", "predicted_cardinality")
    return {key: summary[key] for key in keep}


class AsymmetricLoss(nn.Module):
    """ASL (Ridnik et al., 2021), averaged over labels and images as BCEWithLogitsLoss is."""

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05) -> None:
        super().__init__()
        self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        shifted = (p - self.clip).clamp(min=0)
        positive = y * (1 - p).pow(self.gamma_pos) * torch.log(p.clamp(min=1e-8))
        negative = (1 - y) * shifted.pow(self.gamma_neg) * torch.log((1 - shifted).clamp(min=1e-8))
        return -(positive + negative).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="grocery (train.txt, val.txt, test.txt, classes.csv)")
    parser.add_argument("--work", type=Path, required=True, help="where the composites and the two runs go")
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--asl", action="store_true", help="also train with the asymmetric loss")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    images = args.work / "composites"
    images.mkdir(parents=True, exist_ok=True)
    source = load_source(args.data, label_level="coarse")
    rng = np.random.default_rng(args.seed)
    rows = []
    for split, count in (("train", args.train), ("val", args.val), ("test", args.test)):
        rows += _composites(source.splits()[split], count, split, images, rng)
    multi = images / "labels.csv"
    multi.write_text("path,label,split\n" + "".join(f"{r[0]},{r[1]}|{r[2]},{r[3]}\n" for r in rows))
    single = images / "first_label.csv"
    single.write_text("path,label,split\n" + "".join(f"{r[0]},{r[1]},{r[3]}\n" for r in rows if r[3] != "test"))
    test = [r for r in rows if r[3] == "test"]

    results, seconds = {}, {}
    plan = [("multi-label", multi), ("single-label (first label only)", single)]
    plan += [("multi-label, asymmetric loss", multi)] if args.asl else []
    job = importlib.import_module("ocula.train.job")
    for name, manifest in plan:
        began = time.perf_counter()
        job.nn.BCEWithLogitsLoss = AsymmetricLoss if "asymmetric" in name else nn.BCEWithLogitsLoss
        run = ocula.train(str(manifest), mode="head", epochs=args.epochs, seed=args.seed,
                          out=str(args.work / name.replace(" ", "").replace(",", "-").split("(")[0]),
                          runs_root=str(args.work))
        seconds[name] = round(time.perf_counter() - began, 1)
        results[name] = _score(run.path, images, test)
    job.nn.BCEWithLogitsLoss = nn.BCEWithLogitsLoss
    evaluation = ocula.evaluate(args.work / "multi-label", multi, split="test", quiet=True)
    record = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "date": dt.date.today().isoformat(), "cpus": len(os.sched_getaffinity(0)),
        "composites": {"train": args.train, "val": args.val, "test": args.test}, "classes": len(source.classes),
        "recipe": f"--mode head --epochs {args.epochs}", "train_seconds": seconds, "test": results,
        "report": str(evaluation.html),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
