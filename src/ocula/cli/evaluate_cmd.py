"""``ocula evaluate`` and ``ocula compare``: the report on a run, and runs side by side."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ocula.cli import TTA_HELP

Opt = typer.Option
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

COLUMNS = (  # (key, header, format)
    ("run", "run", "{}"), ("augment", "augment", "{}"), ("mode", "mode", "{}"), ("split", "split", "{}"),
    ("images", "images", "{}"), ("accuracy", "accuracy", "{:.4f}"), ("top_k_accuracy", "top-k", "{:.4f}"),
    ("macro_f1", "macro F1", "{:.4f}"), ("mAP", "mAP (multi-label)", "{:.4f}"), ("ece", "ECE", "{:.4f}"),
    ("shift_accuracy", "shift accuracy", "{:.4f}"), ("shift_drop", "mean drop", "{:.4f}"),
    ("hurts_most", "hurts most", "{}"),
)


def evaluate(
    run: Annotated[str, typer.Argument(help="A run directory written by `ocula train`.")],
    data: Annotated[str, typer.Argument(help="Labelled images in any layout `ocula train` reads.")],
    split: Annotated[str, Opt(help="test, val, train or all; a plain folder of class folders is used whole.")] = "test",
    top_k: Annotated[int, Opt(help="k of the top-k accuracy.")] = 5,
    shift: Annotated[Optional[str], Opt(help="phone: score again under 10 phone-photo corruptions x 3 severities.")] = None,
    shift_images: Annotated[int, Opt(help="Images scored under shift (a seeded sample; 0 = all); 500 gives a "
                                          "standard error of at most 2.2 points per corruption and severity.")] = 500,
    out: Annotated[Optional[str], Opt(help="Report folder. Default RUN/evaluations/<split>[-<shift>].")] = None,
    label_level: Annotated[str, Opt(help="fine or coarse labels for manifests with classes.csv.")] = "fine",
    seed: Annotated[int, Opt(help="Seed of the shift sample and corruptions.")] = 0,
    backend: Annotated[str, Opt(help="auto (ONNX Runtime, exporting once if needed), onnx or torch.")] = "auto",
    target_accuracy: Annotated[float, Opt(help="The report names the --min-confidence that keeps this accuracy on the "
                                               "images answered, and the share it answers.")] = 0.95,
    tta: Annotated[bool, Opt("--tta", help=TTA_HELP + " Default folder RUN/evaluations/<split>[-<shift>]-tta.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Print only the report path.")] = False,
) -> None:
    """Where and why a classifier fails: metrics, confusion, confident mistakes, diagnosis, shift.

    Writes report.html (self-contained), metrics.json, predictions.jsonl (one line per image) and plots/*.png. The last line printed is the report's path.
    """
    from ocula.evaluate.job import evaluate as run_evaluation

    result = run_evaluation(run, data, split=split, top_k=top_k, shift=shift, out=out, label_level=label_level,
                            shift_images=shift_images, seed=seed, backend=backend,
                            target_accuracy=target_accuracy, tta=tta, quiet=quiet)
    print(result.html)


def compare(
    runs: Annotated[list[str], typer.Argument(help="Run directories or evaluation folders.")],
    split: Annotated[Optional[str], Opt(help="Use each run's evaluation of this split (default: the newest).")] = None,
    out: Annotated[str, Opt(help="Folder for comparison.md and comparison.json.")] = ".",
) -> None:
    """Runs side by side: accuracy, top-k, macro F1, calibration and the drop under shift."""
    from ocula.evaluate.job import compare as collect

    rows = collect(runs, split)
    table = Table()
    for _, header, _ in COLUMNS:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row[key], fmt) for key, _, fmt in COLUMNS])
    console.print(table)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "comparison.json").write_text(json.dumps(rows, indent=2))
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[key], fmt) for key, _, fmt in COLUMNS) + " |" for row in rows]
    (folder / "comparison.md").write_text("\n".join(lines) + "\n")
    print(folder / "comparison.md")


def _cell(value: Any, fmt: str) -> str:
    return "" if value is None else fmt.format(value)
