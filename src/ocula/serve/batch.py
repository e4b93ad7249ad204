"""Offline scoring: a folder, an image or a manifest in; one JSON line per image out (``ocula batch``).

Each line is ``{"source", "label", "probability", "prediction"}`` (+ ``"true_label"`` when the
input carries labels, + ``"top_k"`` when ``top_k > 1``). Images go through the run's
``Predictor.stream`` (decoding in threads a few batches ahead of the model, so memory holds a
few batches of pixels whatever the input's size), and each batch's lines go out in one write:
an interruption (Ctrl-C or a kill) loses at most the batch in progress. Running the same command again reads the output,
drops a torn last line, skips every source already there and appends the rest. Unusable files
are skipped, listed in ``<out stem>.errors.jsonl`` and tried again on the next run.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ocula.data.readers import IMAGE_EXTENSIONS, load_source
from ocula.errors import DataError, Interrupted, UsageError
from ocula.data.dataset import LABEL_SEPARATOR
from ocula.inference import Predictor, check_min_confidence, multilabel_record, prediction_record
from ocula.storage import RunDir

FOLDER_FORMATS = frozenset({"class_folders", "split_folders"})  # load_source layouts that are "just a folder"
_SPLIT_MANIFESTS = {"train.txt": "train", "training.txt": "train", "val.txt": "val", "validation.txt": "val",
                    "test.txt": "test"}
_IGNORED = ("__MACOSX",)


@dataclass(frozen=True)
class Item:
    """One image to score: its path or URL as written to the output, and its label if the input had one."""

    source: str
    true_label: str | None = None


@dataclass
class BatchResult:
    """What one ``score`` call did; ``bad`` lists (path, reason) for the files it skipped."""

    out: Path
    errors: Path
    input: str  # what the input was read as
    total: int  # images in the input
    written: int  # lines appended by this call
    skipped_existing: int  # images already in the output from an earlier run
    bad: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0
    peak_rss_mb: int = 0
    model: str = ""
    unit: str = "images"  # or "rows" (a tabular run)
    rejected: int = 0  # lines written with "rejected": true (top probability below --min-confidence)

    def interrupted(self) -> Interrupted:
        """What Ctrl-C says: how much is safe on disk, and that the same command continues."""
        return Interrupted(f"interrupted: {self.written} {self.unit} written to {self.out} by this run",
                           hint="run the same command again to continue where it stopped")

    def finish(self, began: float) -> None:
        """Speed and memory of the call that began at ``began``; no errors file when nothing was bad."""
        self.seconds = time.perf_counter() - began
        self.images_per_second = self.written / self.seconds if self.seconds > 0 else 0.0
        self.peak_rss_mb = peak_rss_mb()
        if not self.bad:
            self.errors.unlink(missing_ok=True)


def score(
    run: str | os.PathLike[str],
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    backend: str = "auto",
    batch_size: int = 16,
    top_k: int = 1,
    progress: bool = True,
    int8: bool = False,
    threads: int | None = None,
    min_confidence: float | None = None,
    tta: bool = False,
    log: Callable[[str], None] | None = None,
) -> BatchResult:
    """Score every image of ``source`` with the model in ``run``, appending JSON Lines to ``out``.

    ``source`` is read by one rule:

    - an image file (a suffix in ``IMAGE_EXTENSIONS``) is scored alone;
    - ``train.txt`` / ``val.txt`` / ``test.txt`` beside ``classes.csv`` and ``train.txt`` is that
      split of the ``path, fine_id, coarse_id`` layout, with its labels;
    - any other file must be a manifest ``load_source`` reads (``.lst``, CSV, JSON Lines);
    - a folder is a manifest layout when ``load_source`` finds one there (``train.txt`` +
      ``classes.csv``, ``train.csv``/``.lst``/``.jsonl``, SageMaker channels): all of its
      samples (train, val and test) are scored and each line keeps the ``true_label``;
    - any other folder, class folders included, is scanned recursively for image files
      (hidden files and ``__MACOSX`` left out), in sorted order, without labels.

    Sources are absolute local paths (or the manifest's URLs). ``out`` is continued, never
    overwritten: sources it already holds are skipped. Ctrl-C raises ``Interrupted`` once
    the finished batches are on disk. With ``min_confidence`` every line has ``rejected``, and a
    rejected line has no ``label`` (see ``prediction_record``). ``tta`` averages four views of
    each image (``Predictor.with_tta``): four times the model's work.
    """
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if top_k < 1:
        raise UsageError(f"top-k must be at least 1, got {top_k}")
    check_min_confidence(min_confidence)
    out_path = Path(os.path.abspath(os.path.expanduser(os.fspath(out))))
    run_dir = RunDir.open(run, need=("card",))  # a wrong run path fails before any file is touched
    if run_dir.is_tabular():
        from ocula.serve.table_batch import score_table

        if min_confidence is not None or tta:
            raise UsageError(f"{'--min-confidence' if min_confidence is not None else '--tta'} applies to image runs; "
                             "this is a table run")
        return score_table(run_dir, source, out_path, progress=progress)
    RunDir.open(run, need=("card", "weights"))
    items, kind = resolve_input(source)
    errors_path = errors_path_for(out_path)
    items = _unique(items)
    done = read_done(out_path)
    todo = [item for item in items if item.source not in done]
    result = BatchResult(out=out_path, errors=errors_path, input=kind, total=len(items), written=0,
                         skipped_existing=len(items) - len(todo))
    if not todo:
        errors_path.unlink(missing_ok=True)
        result.model = "not loaded (nothing left to score)"
        result.peak_rss_mb = peak_rss_mb()
        return result
    fd = open_output(out_path)
    try:
        predictor = Predictor.from_run(run, backend=backend, int8=int8, threads=threads, tta=tta, log=log)
    except BaseException:
        os.close(fd)
        raise
    result.model = predictor.describe()
    labels, k = predictor.labels, min(top_k, len(predictor.labels))
    gate = predictor.gate(min_confidence)
    began = time.perf_counter()
    try:
        with errors_path.open("w", encoding="utf-8") as errors, progress_bar(progress, len(todo)) as advance, \
                closing(predictor.stream([item.source for item in todo], batch_size=batch_size)) as batches:
            for batch in batches:
                if batch.positions:
                    if predictor.card.multi_label:  # the labels above their thresholds, every probability
                        thresholds = predictor.card.decision_thresholds()
                        lines = [multilabel_record(todo[i].source, row, labels, thresholds,
                                                   _true_labels(todo[i].true_label))
                                 for i, row in zip(batch.positions, batch.probabilities)]  # type: ignore[arg-type]
                    else:
                        lines = [prediction_record(todo[i].source, row, labels, k, todo[i].true_label, gate, image)
                                 for i, row, image in zip(batch.positions, batch.probabilities,  # type: ignore[arg-type]
                                                          batch.prepared)]
                    append(fd, "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8"), out_path,
                           result.written)
                    result.rejected += sum(bool(line.get("rejected")) for line in lines)
                    result.written += len(batch.positions)
                if batch.failed:
                    errors.write("".join(json.dumps({"source": todo[i].source, "reason": error.reason,
                                                     "detail": error.detail}) + "\n" for i, error in batch.failed))
                    errors.flush()
                    result.bad.extend((todo[i].source, error.reason) for i, error in batch.failed)
                advance(len(batch.positions) + len(batch.failed))
    except KeyboardInterrupt:
        raise result.interrupted() from None
    finally:
        os.close(fd)
        result.finish(began)
    return result


def resolve_input(source: str | os.PathLike[str]) -> tuple[list[Item], str]:
    """The images of ``source`` by the rule in ``score``'s docstring, and a phrase saying how it was read."""
    text = os.fspath(source)
    if "://" in text:
        return _from_data_source(load_source(text))
    path = Path(text).expanduser()
    if not path.exists():
        raise UsageError(f"input {text!r} does not exist",
                         hint="give a folder of images, an image file or a manifest (.lst, CSV, JSON Lines)")
    path = Path(os.path.abspath(path))
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return [Item(str(path))], "one image"
        split = _SPLIT_MANIFESTS.get(path.name.lower())
        if split and (path.parent / "classes.csv").is_file() and (path.parent / "train.txt").is_file():
            data = load_source(path.parent)
            samples = getattr(data, split) or []
            return [Item(s.path, s.label) for s in samples], f"{path.name} ({data.format}, {split} split, labelled)"
        return _from_data_source(load_source(path))
    try:
        data = load_source(path)
    except DataError:
        data = None  # no layout load_source knows: a plain folder of images
    if data is not None and data.format not in FOLDER_FORMATS:
        return _from_data_source(data)
    images = _scan(path)
    if not images:
        raise DataError(f"no image files under {path}",
                        hint=f"ocula batch reads {', '.join(sorted(IMAGE_EXTENSIONS))} files, or a manifest")
    return [Item(p) for p in images], "folder"


def errors_path_for(out: Path) -> Path:
    """``preds.jsonl`` -> ``preds.errors.jsonl``: the unusable files of the last run."""
    return out.with_name((out.stem if out.suffix else out.name) + ".errors.jsonl")


def open_output(out: Path) -> int:
    """A descriptor appending to ``out`` (its folder made), or a one-line UsageError."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}", hint="choose another --out") from None


def append(fd: int, data: bytes, out: Path, written: int) -> None:
    """Append ``data`` whole; a full disk (or any refused write) is one line that says what is safe."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror or error} after {written} lines written by this run",
                         hint="free space, then run the same command again: it continues after the lines "
                              "already written") from None


def read_done(out: Path, key: str = "source") -> set[Any]:
    """The ``key`` of every line already in ``out`` (sources, or rows of a table); a torn last line
    (an interrupted write) is cut off the file."""
    if not out.exists():
        return set()
    if not out.is_file():
        raise UsageError(f"--out {out} is not a file", hint="give a file name such as preds.jsonl")
    done: set[Any] = set()
    keep = 0
    with out.open("rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            if raw.strip() == b"" and raw.endswith(b"\n"):
                keep += len(raw)
                continue
            try:
                record = json.loads(raw)
                complete = raw.endswith(b"\n") and isinstance(record[key], str if key == "source" else int)
            except (ValueError, KeyError, TypeError):
                complete = False
            if not complete:
                if handle.read().strip():
                    raise UsageError(f"{out}:{lineno} is not a line `ocula batch` wrote",
                                     hint="give another --out, or delete the file to start over")
                break
            done.add(record[key])
            keep += len(raw)
    if keep < out.stat().st_size:
        os.truncate(out, keep)
    return done


def _from_data_source(data: Any) -> tuple[list[Item], str]:
    samples = [s for part in (data.train, data.val, data.test) for s in (part or [])]
    if data.format in FOLDER_FORMATS:  # a remote folder: load_source listed it, the folder names are not labels
        return [Item(s.path) for s in samples], "folder"
    parts = ", ".join(f"{name} {len(part)}" for name, part in (("train", data.train), ("val", data.val),
                                                                ("test", data.test)) if part)
    return [Item(s.path, s.label) for s in samples], f"{data.format} manifest ({parts}; labelled)"


def _scan(folder: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not (d.startswith(".") or d in _IGNORED)]
        found.extend(os.path.join(root, name) for name in files
                     if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def _unique(items: list[Item]) -> list[Item]:
    """First occurrence of each source (a manifest may list an image twice)."""
    seen: set[str] = set()
    return [item for item in items if not (item.source in seen or seen.add(item.source))]


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


class _Speed(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = {"images": "img"}.get(unit, unit)

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s")


class progress_bar:  # noqa: N801 - used as a function: ``with progress_bar(...) as advance``
    """A rich bar on stderr (done/total, speed, ETA) when asked for and stderr is a terminal."""

    def __init__(self, enabled: bool, total: int, unit: str = "images") -> None:
        console = Console(stderr=True, highlight=False)
        self.bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), _Speed(unit), TextColumn("ETA"),
                            TimeRemainingColumn(), console=console, transient=True,
                            disable=not enabled or not console.is_terminal)
        self.task = self.bar.add_task("scoring", total=total)

    def __enter__(self) -> Callable[[int], None]:
        self.bar.__enter__()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)


def _true_labels(label: str | None) -> list[str] | None:
    """A labelled item's classes (a multi-label sample's label joins them with ``|``)."""
    return None if label is None else label.split(LABEL_SEPARATOR)
