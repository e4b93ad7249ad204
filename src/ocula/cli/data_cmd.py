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
    label_issues: Annotated[bool, typer.Option(
        "--label-issues", help="Also rank the photos most likely mislabelled (confident learning on out-of-fold "
        "predictions from the offline pretrained backbone; about a minute per 3,000 photos on 2 cores). Writes "
        "label_issues.csv and label_issues.png beside --out.")] = False,
    model: Annotated[str, typer.Option(help="Backbone whose features --label-issues scores.")] = "tf_efficientnet_lite0",
) -> None:
    """Find corrupt, unreadable, tiny, duplicate and leaked images, and class imbalance;
    with --label-issues, also the photos whose label is probably wrong."""
    from ocula.data import audit, load_source

    source = load_source(data, label_level=label_level)
    total = sum(len(s) for s in source.splits().values())
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("auditing images", total=total)
        report = audit(source, min_side=min_side, progress=lambda done, total: bar.update(task, completed=done))
    if label_issues:
        from ocula.data import Finding

        issues = _label_issues(data, label_level, model, out, source.root)
        if issues.rows:
            report.findings.append(Finding("warning", "label_issues", f"{issues.sentence()}; review "
                                           f"{out.with_name('label_issues.csv')}"))
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
        if split in report.labels:  # multi-label: images carry several labels
            about = report.labels[split]
            pairs = ", ".join(f"{a}+{b} ({n})" for a, b, n in about["top_pairs"][:3])
            console.print(f"{split}: {about['images']} usable images, {about['mean_labels_per_image']:.2f} labels per "
                          f"image, {sum(1 for n in counts.values() if n)} of {len(counts)} labels present"
                          + (f"; most frequent pairs: {pairs}" if pairs else ""))
        else:
            console.print(f"{split}: {sum(counts.values())} usable images in {len(counts)} classes")
    levels = Counter(f.level for f in report.findings)
    console.print(f"{levels['error']} error(s), {levels['warning']} warning(s), {levels['info']} note(s); "
                  f"{len(report.unusable)} unusable file(s) will be skipped by training; report: {out}")
    if strict and levels["error"]:
        raise typer.Exit(1)


def _label_issues(data: str, label_level: str, model: str, out: Path, root: str):
    from ocula.storage.log import RunLog
    from ocula.train.label_issues import write_gallery
    from ocula.train.label_issues import label_issues as rank

    log = RunLog()
    issues = rank(data, model=model, label_level=label_level, log=log)
    csv_path = issues.write_csv(out.with_name("label_issues.csv"))
    gallery = write_gallery(issues, out.with_name("label_issues.png"))
    table = Table(title=f"photos most likely mislabelled ({len(issues.rows)} flagged; first 15)")
    for column in ("rank", "file", "given label", "suggested label", "p(given)", "p(suggested)"):
        table.add_column(column, overflow="fold")
    for row in issues.rows[:15]:
        table.add_row(str(row["rank"]), _short(row["path"], root), row["given_label"], row["suggested_label"],
                      f"{row['given_probability']:.2f}", f"{row['suggested_probability']:.2f}")
    console.print(table)
    console.print(f"{issues.sentence()}; all of them in {csv_path}" + (f", pictures in {gallery}" if gallery else ""))
    return issues


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
