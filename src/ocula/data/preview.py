"""A contact sheet of augmented training images, to see what a policy does before training."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ocula.data.augment import cached_short_side, get_policy
from ocula.data.dataset import DataSource, Sample
from ocula.data.decode_cache import decode_resized
from ocula.data.imageio import read_bytes
from ocula.errors import DataError, ImageError, UsageError

_LABEL_HEIGHT = 22
_GAP = 4
_TITLE_HEIGHT = 28


def write_preview(
    source: DataSource,
    policy: str,
    out_png: str | os.PathLike[str],
    *,
    image_size: int = 224,
    n: int = 16,
    seed: int = 0,
) -> Path:
    """Write a grid PNG of ``n`` training images after ``policy``, each labelled with its
    class, and return its path. Classes take turns so small classes show up too; unreadable
    files are skipped. The global torch RNG is left as it was."""
    transform = get_policy(policy, image_size)
    if n < 1:
        raise UsageError(f"preview needs n >= 1 images, got {n}")
    short_side = cached_short_side(image_size)
    tiles: list[tuple[Image.Image, str]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for sample in _round_robin(source.train or source.all_samples(), seed):
            try:
                array = decode_resized(read_bytes(sample.path), sample.path, short_side)
            except ImageError:
                continue
            augmented = transform(torch.from_numpy(array).permute(2, 0, 1).contiguous())
            tiles.append((Image.fromarray(augmented.permute(1, 2, 0).numpy()), sample.label))
            if len(tiles) == n:
                break
    if not tiles:
        raise DataError(f"no readable image in {source.root} to preview", hint="run the audit to see why")
    target = Path(out_png)
    target.parent.mkdir(parents=True, exist_ok=True)
    _grid(tiles, image_size, f"{policy} @ {image_size}px, seed {seed}").save(target)
    return target


def _round_robin(samples: list[Sample], seed: int) -> list[Sample]:
    """Samples ordered class by class in turn, each class shuffled by ``seed``."""
    rng = np.random.default_rng(seed % 2**63)
    by_class: dict[str, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample.label, []).append(sample)
    queues = [[members[i] for i in rng.permutation(len(members))] for _, members in sorted(by_class.items())]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    ordered = []
    for round_ in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[round_] for q in queues if round_ < len(q))
    return ordered


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def _grid(tiles: list[tuple[Image.Image, str]], size: int, title: str) -> Image.Image:
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    cell_w, cell_h = size + _GAP, size + _LABEL_HEIGHT + _GAP
    sheet = Image.new("RGB", (columns * cell_w + _GAP, _TITLE_HEIGHT + rows * cell_h + _GAP), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((_GAP, 6), title, fill=(0, 0, 0), font=_font(16))
    label_font = _font(14)
    for index, (tile, label) in enumerate(tiles):
        x = _GAP + (index % columns) * cell_w
        y = _TITLE_HEIGHT + (index // columns) * cell_h
        sheet.paste(tile, (x, y))
        text = label if draw.textlength(label, font=label_font) <= size else label[: max(1, size // 8)] + "..."
        draw.text((x + 2, y + size + 3), text, fill=(0, 0, 0), font=label_font)
    return sheet
