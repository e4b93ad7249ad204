"""Ranked label issues against injected label noise: ocula vs cleanlab on the same features.

    pip install cleanlab   # the reference implementation (benchmarks only, not a dependency)
    .venv/bin/python benchmarks/label_issues.py ../shared/data/grocery --noise 0.05 \
        --out benchmarks/results/label_issues_grocery.json

Reads the ``path, fine_id, coarse_id`` manifest ``train.txt`` (and ``classes.csv``) of DATA, flips
``--noise`` of the training labels to another class drawn uniformly (seeded), writes that as a
CSV manifest, and runs ``ocula.train.label_issues.label_issues`` on it (what
``ocula data check MANIFEST --label-issues`` runs). Reported: how many photos ocula flags, the
precision and recall of the flagged set and of the first K of its ranking (K = the number of
flips injected), and the same for ``cleanlab.filter.find_label_issues`` (its default,
prune-by-noise-rate, ranked by self-confidence) on the *same* out-of-fold probabilities.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

from ocula.evaluate.label_issues import precision_recall_at
from ocula.storage.log import RunLog
from ocula.train.label_issues import label_issues


def _noisy_manifest(data: Path, noise: float, seed: int, out: Path) -> tuple[Path, set[str], int]:
    with (data / "classes.csv").open(encoding="utf-8") as f:
        names = {int(row[1]): row[0] for row in list(csv.reader(f))[1:]}
    rows = [[cell.strip() for cell in line.split(",")] for line in (data / "train.txt").read_text().splitlines()
            if line.strip()]
    rng = np.random.default_rng(seed)
    flip = rng.choice(len(rows), size=round(noise * len(rows)), replace=False)
    labels = [names[int(r[1])] for r in rows]
    classes = sorted(set(names.values()))
    flipped = set()
    for i in flip:
        labels[i] = rng.choice([c for c in classes if c != labels[i]])
        flipped.add(str((data / rows[i][0]).resolve()))
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows([str((data / r[0]).resolve()), label] for r, label in zip(rows, labels))
    return out, flipped, len(rows)


def _scores(order: np.ndarray, flagged: int, truth: np.ndarray, k: int) -> dict[str, float]:
    precision, recall = precision_recall_at(order, truth, flagged)
    precision_k, recall_k = precision_recall_at(order, truth, k)
    return {"flagged": flagged, "precision_flagged": round(precision, 3), "recall_flagged": round(recall, 3),
            "precision_at_k": round(precision_k, 3), "recall_at_k": round(recall_k, 3)}


def _ranked(flagged: np.ndarray, self_confidence: np.ndarray) -> np.ndarray:
    """The flagged photos first (in their order), then the rest by self-confidence: a ranking of all."""
    rest = np.setdiff1d(np.argsort(self_confidence, kind="stable"), flagged, assume_unique=True)
    rest = rest[np.argsort(self_confidence[rest], kind="stable")]
    return np.concatenate([flagged, rest])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a folder with train.txt and classes.csv (grocery's layout)")
    parser.add_argument("--noise", type=float, default=0.05, help="share of training labels flipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        manifest, flipped, total = _noisy_manifest(args.data, args.noise, args.seed, Path(tmp) / "noisy.csv")
        result = label_issues(manifest, log=RunLog())
    truth = np.array([i for i, p in enumerate(result.paths) if p in flipped])
    self_confidence = result.probs[np.arange(len(result.labels)), result.labels]
    order = np.array([result.paths.index(row["path"]) for row in result.rows], dtype=np.int64)
    k = len(truth)
    record = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "date": dt.date.today().isoformat(), "cpus": len(os.sched_getaffinity(0)),
        "images": result.images, "injected": k, "noise": args.noise, "seed": args.seed,
        "seconds": round(result.seconds, 1),
        "out_of_fold_accuracy": round(float((result.probs.argmax(1) == result.labels).mean()), 4),
        "ocula": _scores(_ranked(order, self_confidence), len(order), truth, k),
    }
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        record["cleanlab"] = "not installed (pip install cleanlab)"
    else:
        ranked = find_label_issues(result.labels, result.probs, return_indices_ranked_by="self_confidence")
        record["cleanlab"] = _scores(_ranked(np.asarray(ranked), self_confidence), len(ranked), truth, k)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
