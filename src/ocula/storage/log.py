"""What a run says: console lines mirrored into log.txt, and progress bars with ETA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunLog:
    """Lines go to stdout and to ``log.txt``; progress bars go to stderr and vanish when done."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False)
        self.path: Path | None = None
        self._pending: list[str] = []

    def attach(self, path: Path) -> None:
        """Start mirroring into ``path``; lines said before the run directory existed go first."""
        self.path = path
        with path.open("a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in self._pending)
        self._pending.clear()

    def line(self, text: str, style: str | None = None) -> None:
        if not self.quiet:
            self.out.print(text, style=style, markup=False)
        if self.path is None:
            self._pending.append(text)
        else:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(text + "\n")

    def warn(self, text: str) -> None:
        self.line("warning: " + text, style="yellow")

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.err,
            transient=True,
            disable=self.quiet or not self.err.is_terminal,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
