"""The reject option on a real run: coverage and accuracy kept, and what is rejected that should be.

    .venv/bin/python benchmarks/reject.py /tmp/ocula-runs/grocery-phone-cal ../shared/data/grocery \
        --out benchmarks/results/reject.json

RUN is a run directory written by ``ocula train`` (ideally calibrated), DATA its labelled data
with a validation and a test split. Through the run's ``Predictor`` (the one inference path):

1. **threshold chosen on validation**: ``ocula.evaluate.metrics.selective`` on the validation
   split names the ``--min-confidence`` that keeps ``--target-accuracy``; that threshold is then
   applied to the test split (which it never saw): coverage and accuracy of the answered images,
   by confidence alone and with the full gate (confidence + unlike every training photo).
2. **images unlike anything in training**, none of them a product photo: blank frames (11 grey
   levels, black to white), uniform and Gaussian noise (20 each), synthetic screenshots (20: text
   lines and UI bars on a flat background), handwritten digits (scikit-learn's ``load_digits``,
   upscaled; 50) and two natural non-product photos (scikit-learn's sample images) cut into 20
   crops. Each is JPEG-encoded as a phone would send it. Reported: the share rejected at the
   validation threshold and at 0.6, by confidence alone and with the gate.

A run whose card predates ``image_ranges`` gets them here, from its training split (split.json),
with the same function training uses; the card on disk is not changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def unlike_training(seed: int = 0) -> dict[str, list[bytes]]:
    """Encoded images of five kinds that no product photo resembles."""
    from sklearn.datasets import load_digits, load_sample_images

    rng = np.random.default_rng(seed)
    kinds: dict[str, list[bytes]] = {}
    kinds["blank"] = [jpeg(np.full((480, 640, 3), level, np.uint8)) for level in np.linspace(0, 255, 11).astype(int)]
    kinds["uniform noise"] = [jpeg(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) for _ in range(20)]
    kinds["gaussian noise"] = [jpeg(np.clip(rng.normal(128, 40, (480, 640, 3)), 0, 255).astype(np.uint8))
                               for _ in range(20)]
    shots = []
    for i in range(20):
        background = tuple(int(v) for v in rng.integers(200, 256, 3)) if i % 2 else tuple(int(v) for v in rng.integers(0, 50, 3))
        ink = (20, 20, 20) if i % 2 else (230, 230, 230)
        image = Image.new("RGB", (720, 1280), background)
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, 720, 90), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        for y in range(120, 1240, int(rng.integers(28, 60))):
            draw.text((30, y), " ".join(rng.choice(["Settings", "Wi-Fi", "Battery", "Inbox", "Order #4411", "Total",
                                                     "12:45", "Search", "Cart", "Profile"], 4)), fill=ink)
        shots.append(jpeg(np.asarray(image)))
    kinds["screenshot"] = shots
    digits = load_digits()
    picks = rng.choice(len(digits.images), 50, replace=False)
    kinds["handwritten digit"] = [
        jpeg(np.asarray(Image.fromarray((255 - digits.images[i] * 16).clip(0, 255).astype(np.uint8)).resize(
            (256, 256), Image.NEAREST).convert("RGB"))) for i in picks]
    crops = []
    for photo in load_sample_images().images:
        for _ in range(10):
            y, x = rng.integers(0, photo.shape[0] - 240), rng.integers(0, photo.shape[1] - 240)
            crops.append(jpeg(np.ascontiguousarray(photo[y:y + 240, x:x + 240])))
    kinds["non-product photo"] = crops
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data")
    parser.add_argument("--target-accuracy", type=float, default=0.95)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reject.json"))
    args = parser.parse_args()

    from ocula.data import load_source
    from ocula.data.stats import image_stats, typical_ranges
    from ocula.evaluate.metrics import selective
    from ocula.inference import Gate, Predictor

    predictor = Predictor.from_run(args.run, backend="onnx", log=lambda m: print(m, file=sys.stderr))
    ranges = predictor.card.image_ranges
    ranges_from = "the card"
    if not ranges:
        train = [row[0] for row in json.loads((args.run / "split.json").read_text())["train"]]
        ranges = typical_ranges([image_stats(p.array) for batch in predictor.stream(train, score=False)
                                 for p in batch.prepared])  # statistics per batch: no pixels kept
        ranges_from = f"computed here from the {len(train)} training images (the card predates image_ranges)"
    source = load_source(args.data)
    index = {name: i for i, name in enumerate(predictor.labels)}

    def scored(samples):
        samples = [s for s in samples if s.label in index]
        rows, images, labels = [], [], []
        for batch in predictor.stream([s.path for s in samples]):
            rows.append(batch.probabilities)
            images.extend(batch.prepared)
            labels.extend(index[samples[i].label] for i in batch.positions)
        return np.concatenate(rows), images, np.array(labels)

    val_p, _, val_y = scored(source.val)
    chosen = selective(val_y, val_p, args.target_accuracy)
    threshold = chosen["threshold"] if chosen["threshold"] is not None else 1.0
    test_p, test_images, test_y = scored(source.test)
    correct = test_p.argmax(axis=1) == test_y

    def rejected(rows, images, at: float, gated: bool) -> np.ndarray:
        gate = Gate(at, ranges if gated else {})
        return np.array([gate.why(row, image) is not None for row, image in zip(rows, images)])

    test = {}
    for name, gated in (("confidence alone", False), ("confidence + unlike training", True)):
        kept = ~rejected(test_p, test_images, threshold, gated)
        test[name] = {"coverage": round(float(kept.mean()), 4),
                      "accuracy_answered": round(float(correct[kept].mean()), 4) if kept.any() else None}
    gate_only = rejected(test_p, test_images, 0.0, True)
    result = {"command": shlex.join([sys.executable, *sys.argv]), "date": dt.date.today().isoformat(),
              "cpus": os.cpu_count(), "run": str(args.run), "data": args.data, "engine": predictor.describe(),
              "temperature": predictor.card.temperature, "image_ranges": ranges, "image_ranges_from": ranges_from,
              "target_accuracy": args.target_accuracy,
              "validation": {k: chosen[k] for k in ("threshold", "coverage", "accuracy")} | {"images": len(val_y)},
              "test": {"images": len(test_y), "accuracy_all": round(float(correct.mean()), 4),
                       "at_validation_threshold": test,
                       "rejected_by_the_image_check_alone": round(float(gate_only.mean()), 4)},
              "unlike_training": {}}
    for kind, encoded in unlike_training().items():
        prepared = [predictor.prepare(data) for data in encoded]
        rows = predictor.probabilities(np.stack([predictor.crop(p) for p in prepared]))
        result["unlike_training"][kind] = {
            "images": len(encoded), "top_probability_median": round(float(np.median(rows.max(axis=1))), 3),
            **{f"rejected_{name}_at_{at:g}": round(float(rejected(rows, prepared, at, gated).mean()), 3)
               for at in (threshold, 0.6) for name, gated in (("confidence", False), ("gate", True))}}
        print(kind, result["unlike_training"][kind], file=sys.stderr)
    print(json.dumps({k: result[k] for k in ("validation", "test")}, indent=1), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
