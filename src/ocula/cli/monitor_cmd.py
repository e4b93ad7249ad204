"""``ocula monitor``: drift of captured live traffic against the run's validation set."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

Opt = typer.Option
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)
STYLE = {"drift": "bold red", "minor": "yellow", "too few": "dim", "ok": "green"}


def monitor(
    run: Annotated[str, typer.Argument(help="The run directory the server serves.")],
    capture_dir: Annotated[str, typer.Argument(help="The server's --capture-dir folder (capture-*.jsonl files).")],
    labels: Annotated[Optional[str], Opt(help="True classes of captured requests: CSV with the header request_id,"
                                              "label (optional index), or JSON Lines with those keys.")] = None,
    out: Annotated[Optional[str], Opt(help="Report JSON. Default CAPTURE_DIR/monitor.json.")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Print only the headline and the report path.")] = False,
) -> None:
    """Drift in production: predicted classes, confidence, brightness, contrast, sharpness, saturation, size,
    and with --labels live accuracy; says what changed and what to do. The last line printed is the report's path.
    """
    from ocula.serve.monitor import monitor as check
    from ocula.storage import write_json

    report = check(run, capture_dir, labels, log=lambda message: err.print(message, markup=False))
    path = Path(out) if out else Path(capture_dir) / "monitor.json"
    write_json(path, report.to_dict())
    if not quiet:
        table = Table(title=f"{report.captured} captured images vs {report.baseline_images} validation images")
        for column in ("check", "test", "value", "p", "validation", "production", "verdict"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            verdict = f.direction if f.level == "drift" and f.direction else f.level
            table.add_row(f.name, f.test, _num(f.statistic), "" if f.p_value is None else f"{f.p_value:.2g}",
                          _num(f.baseline), _num(f.live), f"[{STYLE.get(f.level, '')}]{verdict}[/]")
        console.print(table)
    console.print(report.headline, style="bold red" if report.drifted else "bold", markup=False, soft_wrap=True)
    if not quiet:
        for action in report.actions:
            console.print(f"to do: {action}", markup=False, soft_wrap=True)
    print(path)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
