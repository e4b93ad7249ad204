"""Session-wide test settings: a private decode cache, and no network for model weights."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCULA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ocula-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def write_dataset(root, classes=("circle", "square", "stripes"), per_class: int = 12, size: int = 48,
                  seed: int = 0):
    """Folder-per-class PNGs whose classes differ in shape and colour, with noise: learnable, not trivial."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
            image = Image.fromarray(base)
            draw = ImageDraw.Draw(image)
            colour = tuple(int(v) for v in (np.array([200, 60, 60]) if c % 3 == 0 else
                                            np.array([60, 200, 60]) if c % 3 == 1 else np.array([60, 60, 200])))
            jitter = int(rng.integers(-4, 5))
            m = size // 4 + jitter
            kind = c % 4
            if kind == 0:
                draw.ellipse([m, m, size - m, size - m], fill=colour)
            elif kind == 1:
                draw.rectangle([m, m, size - m, size - m], fill=colour)
            elif kind == 2:
                for x in range(0, size, 8):
                    draw.rectangle([x, 0, x + 3, size], fill=colour)
            else:
                draw.polygon([(size // 2, m), (m, size - m), (size - m, size - m)], fill=colour)
            image.save(folder / f"{name}_{i:03d}.png")
    return root


@pytest.fixture
def make_dataset():
    """write_dataset as a fixture: make_dataset(root, classes=..., per_class=..., size=...)."""
    return write_dataset


def run_cli(*args: str, timeout: float = 600, cwd=None):
    """Run the installed ``ocula`` console script as a user would; returns CompletedProcess."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("ocula")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def cli():
    return run_cli
