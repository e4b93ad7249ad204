"""Do ocula's Grad-CAM heatmaps sit on the product? Share of heatmap mass inside the product box
against random maps, and the time an explanation costs on CPU.

    .venv/bin/python benchmarks/explain.py /tmp/ocula-runs/grocery-phone-jsd --data ../shared/data/grocery \
        --split test --images 200 --out benchmarks/results/explain_grocery.json

The product box is the centre of the crop the model sees (``--box`` of the side, default 0.7:
the central 49% of the area): grocery's photos are shot by a person pointing a phone at one
product, which fills the middle of the frame. Reported: the mean share of each heatmap's mass
inside the box for the predicted class and for the true class, the same for random maps of the
heatmaps' own resolution (7 x 7 uniform noise upsampled like them: what a map that ignores the
image scores), the share of images whose map beats the box's area, and milliseconds per image for
prediction alone and for prediction plus explanation. When the ``grad-cam`` package is installed
(``pip install grad-cam``, the reference implementation), its ``GradCAM`` on the same layer, images
and classes is measured too: the same shares, its time, and the per-image correlation of its maps
with ocula's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ocula.data import load_source
from ocula.inference.explain import Explainer


def _box_share(maps: np.ndarray, box: float) -> np.ndarray:
    side = maps.shape[-1]
    lo, hi = round(side * (1 - box) / 2), round(side * (1 + box) / 2)
    return maps[:, lo:hi, lo:hi].sum((1, 2)) / np.maximum(maps.sum((1, 2)), 1e-12)


def _reference(explainer: Explainer, crops: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The grad-cam package's GradCAM at the same feature map (the layer ending forward_features)."""
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return None
    model, pre = explainer.engine.model, explainer.engine.preprocessing
    layer = model.bn2 if hasattr(model, "bn2") else list(model.children())[-2]
    began, maps = time.perf_counter(), []
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for i in range(0, len(crops), 16):
            x = pre.normalize(torch.from_numpy(np.ascontiguousarray(crops[i:i + 16])))
            maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in classes[i:i + 16]]))
    return np.concatenate(maps), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--box", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    source = load_source(args.data)
    samples = source.splits()[args.split]
    rng = np.random.default_rng(args.seed)
    chosen = [samples[i] for i in sorted(rng.choice(len(samples), min(args.images, len(samples)), replace=False))]
    explainer = Explainer.from_run(args.run)
    predictor = explainer.predictor
    crops = predictor.images([s.path for s in chosen])
    truth = np.array([predictor.labels.index(s.label) for s in chosen])

    began = time.perf_counter()
    probs = np.concatenate([predictor.probabilities(crops[i:i + 16]) for i in range(0, len(crops), 16)])
    predict_ms = (time.perf_counter() - began) / len(crops) * 1000
    predicted = probs.argmax(1)
    began = time.perf_counter()
    heat_predicted = np.concatenate([explainer.heatmaps(crops[i:i + 16], predicted[i:i + 16])
                                     for i in range(0, len(crops), 16)])
    explain_ms = (time.perf_counter() - began) / len(crops) * 1000
    heat_true = np.concatenate([explainer.heatmaps(crops[i:i + 16], truth[i:i + 16]) for i in range(0, len(crops), 16)])
    generator = torch.Generator().manual_seed(args.seed)
    coarse = torch.rand((len(crops), 1, 7, 7), generator=generator)
    random_maps = F.interpolate(coarse, size=crops.shape[-2:], mode="bilinear", align_corners=False)[:, 0].numpy()

    reference = _reference(explainer, crops, predicted)
    area = round(crops.shape[-1] * args.box) ** 2 / crops.shape[-1] ** 2
    shares = {"predicted class": _box_share(heat_predicted, args.box), "true class": _box_share(heat_true, args.box),
              "random maps": _box_share(random_maps, args.box)}
    if reference is not None:
        shares["grad-cam package, predicted class"] = _box_share(reference[0], args.box)
    right = predicted == truth
    record = {
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "date": dt.date.today().isoformat(), "cpus": len(os.sched_getaffinity(0)), "run": args.run,
        "images": len(crops), "box_side": args.box, "box_area": round(area, 3),
        "accuracy": round(float(right.mean()), 4),
        "mean_share_in_box": {k: round(float(v.mean()), 4) for k, v in shares.items()},
        "share_beating_box_area": {k: round(float((v > area).mean()), 4) for k, v in shares.items()},
        "mean_share_in_box_right_vs_wrong": [round(float(shares["predicted class"][right].mean()), 4),
                                             round(float(shares["predicted class"][~right].mean()), 4)
                                             if (~right).any() else None],
        "ms_per_image": {"predict (PyTorch, batches of 16)": round(predict_ms, 1),
                         "explain (Grad-CAM, batches of 16)": round(explain_ms, 1)},
    }
    if reference is not None:
        maps, seconds = reference
        record["ms_per_image"]["grad-cam package (batches of 16)"] = round(seconds / len(crops) * 1000, 1)
        correlation = [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(maps, heat_predicted)]
        record["correlation_with_grad_cam_package"] = {"mean": round(float(np.nanmean(correlation)), 4),
                                                       "min": round(float(np.nanmin(correlation)), 4)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
