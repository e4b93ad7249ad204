"""``ocula data check`` and ``ocula data preview``."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

app = typer.Typer(help="Audit data and preview augmentation.", no_args_is_help=True)
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


@app.command()
def check(
    data: Annotated[str, typer.Argument(help="Images in any layout ocula reads.")],
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("data_audit.json"),
    label_level: Annotated[str, typer.Option(help="fine or coarse (manifests with classes.csv).")] = "fine",
    min_side: Annotated[int, typer.Option(help="Images with a shorter side below this are unusable.")] = 32,
    strict: Annotated[bool, typer.Option(help="Exit with code 1 when an error-level finding exists.")] = False,
) -> None:
    """Find corrupt, unreadable, tiny, duplicate and leaked images, and class imbalance."""
    from ocula.data import audit, load_source

    source = load_source(data, label_level=label_level)
    total = sum(len(s) for s in source.splits().values())
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("auditing images", total=total)
        report = audit(source, min_side=min_side, progress=lambda done, total: bar.update(task, completed=done))
    report.to_json(out)

    table = Table(title=f"data audit of {data}")
    for column in ("level", "finding", "split", "file", "detail"):
        table.add_column(column, overflow="fold")
    order = {"error": 0, "warning": 1, "info": 2}
    for f in sorted(report.findings, key=lambda f: (order.get(f.level, 3), f.code, f.path or "")):
        table.add_row(f.level, f.code, f.split or "", _short(f.path, source.root), f.message,
                      style=LEVEL_STYLE.get(f.level))
    console.print(table)
    for split, counts in report.counts.items():
        console.print(f"{split}: {sum(counts.values())} usable images in {len(counts)} classes")
    levels = Counter(f.level for f in report.findings)
    console.print(f"{levels['error']} error(s), {levels['warning']} warning(s), {levels['info']} note(s); "
                  f"{len(report.unusable)} unusable file(s) will be skipped by training; report: {out}")
    if strict and levels["error"]:
        raise typer.Exit(1)


def _short(path: str | None, root: str) -> str:
    """Paths relative to the data root: the table stays readable."""
    if not path:
        return ""
    return os.path.relpath(path, root) if "://" not in path and path.startswith(root) else path


@app.command()
def preview(
    data: Annotated[str, typer.Argument(help="Images in any layout ocula reads.")],
    augment: Annotated[str, typer.Option(help="Augmentation policy to show.")] = "phone",
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("augment_preview.png"),
    n: Annotated[int, typer.Option("--n", "-n", help="Number of tiles.")] = 16,
    image_size: Annotated[int, typer.Option(help="Tile size in pixels.")] = 224,
    seed: Annotated[int, typer.Option(help="Seed of the random augmentations.")] = 0,
) -> None:
    """Write a PNG grid of augmented samples, to see what a policy does to your images."""
    from ocula.data import load_source
    from ocula.data.preview import write_preview

    path = write_preview(load_source(data), augment, out, image_size=image_size, n=n, seed=seed)
    print(path)


@app.command("policies")
def policies() -> None:
    """List the augmentation policies and what each does."""
    from ocula.data.augment import POLICIES

    for name, description in POLICIES.items():
        console.print(f"[bold]{name}[/bold]: {description}")
