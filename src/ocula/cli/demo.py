"""The demo job: scikit-learn's handwritten digits written out as images, then a default run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ocula.api import train
from ocula.train.run import Run


def write_digits(folder: Path, size: int = 64) -> Path:
    """1,797 8x8 digits as size x size PNGs in folder-per-class layout (0/ ... 9/)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        image = Image.fromarray((255 - pixels * 255 / 16).astype(np.uint8), mode="L")
        out = folder / str(label) / f"digit_{i:04d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        image.resize((size, size), Image.Resampling.BICUBIC).save(out)
    return folder


def run_demo(budget: str = "3m", runs_root: str = "runs") -> Run:
    folder = write_digits(Path(tempfile.mkdtemp(prefix="ocula-digits-")))
    print(f"wrote scikit-learn's digits as images to {folder}")
    return train(folder, budget=budget, runs_root=runs_root)
