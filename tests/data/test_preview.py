from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ocula.data import load_source, write_preview
from ocula.errors import UsageError

from .conftest import class_folders


def test_preview_writes_a_labelled_grid(tmp_path: Path) -> None:
    source = load_source(class_folders(tmp_path / "data", {"cat": 3, "dog": 3}))
    (tmp_path / "data" / "cat" / "broken.jpg").write_bytes(b"")
    state = torch.random.get_rng_state()

    out = write_preview(source, "phone", tmp_path / "out" / "grid.png", image_size=48, n=5, seed=1)

    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    grid = Image.open(out)
    assert out.suffix == ".png" and grid.format == "PNG"
    assert grid.width == 3 * (48 + 4) + 4  # ceil(sqrt(5)) = 3 columns
    again = tmp_path / "again.png"
    write_preview(source, "phone", again, image_size=48, n=5, seed=1)
    assert again.read_bytes() == out.read_bytes()


def test_preview_unknown_policy(tmp_path: Path) -> None:
    source = load_source(class_folders(tmp_path / "data", {"cat": 1}))
    with pytest.raises(UsageError, match="unknown augmentation policy"):
        write_preview(source, "fone", tmp_path / "x.png")
