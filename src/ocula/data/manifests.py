"""Parsers for the text manifests ``readers`` finds: SageMaker ``.lst``, CSV, JSON Lines,
the ``path, fine_id, coarse_id`` lists and their ``classes.csv``.

Parsers take the file's text and the name to show in errors, and never touch the
filesystem: ``resolve`` turns a manifest entry into a path the rest of ocula can open.
Every error names the file and the 1-based line number.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ocula.data.dataset import LABEL_SEPARATOR, Sample
from ocula.errors import DataError

Resolve = Callable[[str], str]

PATH_COLUMNS = ("path", "source-ref", "source_ref", "file", "filename", "image", "image_path", "url")
LABEL_COLUMNS = ("label", "class", "class_name", "category", "target")
_SPLIT_VALUES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}  # fmt: skip
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Parsed:
    """Rows of one manifest: each sample with its split column (``None`` when absent), and
    class ids when the manifest gave them (Ground Truth's ``class-name`` metadata)."""

    fmt: str
    rows: list[tuple[Sample, str | None]]
    ids: dict[str, int] = field(default_factory=dict)
    declared: list[str] = field(default_factory=list)  # classes the file names even if no image has them
    problems: list[str] = field(default_factory=list)  # rows left out, "file:line: why" (multi-label files)


@dataclass
class ClassTable:
    """``classes.csv`` of the id-manifest layout: id -> name at both label levels."""

    fine: dict[int, str]
    coarse: dict[int, str]


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield lineno, line


def _int_label(value: str) -> int | None:
    # SageMaker writes .lst labels as floats ("3.000000").
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def parse_lst(text: str, shown: str, resolve: Resolve) -> Parsed:
    """SageMaker/MXNet ``index<TAB>label<TAB>relative/path`` lines; the label is a class id.

    A multi-label ``.lst`` (SageMaker's ``multi_label=1``) has one 0/1 column per class between
    the index and the path; its rows with another number of columns, or with no label at all,
    are left out and listed in ``problems``."""
    rows: list[tuple[Sample, str | None]] = []
    problems: list[str] = []
    columns: int | None = None  # label columns of a multi-label file, from its first row
    for lineno, line in _lines(text):
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            fields = line.split(None, 2)
        if columns is None and len(fields) > 3 and not rows:
            columns = len(fields) - 2
        if columns is not None:
            sample = _multi_lst_row(fields, columns, shown, lineno, resolve, problems)
            if sample is not None:
                rows.append((sample, None))
            continue
        if len(fields) != 3:
            raise DataError(f"{shown}:{lineno}: cannot parse {line.strip()!r}: expected 'index<TAB>label<TAB>path'")
        label = _int_label(fields[1].strip())
        if label is None:
            raise DataError(f"{shown}:{lineno}: label {fields[1].strip()!r} is not a whole number", hint=".lst labels are class ids 0, 1, 2, ...")
        rows.append((Sample(resolve(fields[2].strip()), str(label)), None))
    declared = [str(j) for j in range(columns)] if columns else []
    return Parsed("lst", rows, declared=declared, problems=problems)


def _multi_lst_row(fields: list[str], columns: int, shown: str, lineno: int, resolve: Resolve,
                   problems: list[str]) -> Sample | None:
    where = f"{shown}:{lineno}"
    if len(fields) - 2 != columns:
        problems.append(f"{where}: {len(fields) - 2} label columns where the first row has {columns}; row left out")
        return None
    values = [_int_label(cell.strip()) for cell in fields[1:-1]]
    if any(v not in (0, 1) for v in values):
        problems.append(f"{where}: label columns must be 0 or 1, got {'/'.join(c.strip() for c in fields[1:-1])}; "
                        "row left out")
        return None
    labels = [str(j) for j, v in enumerate(values) if v == 1]
    if not labels:
        problems.append(f"{where}: {fields[-1].strip()} has no label (every column is 0); row left out")
        return None
    return Sample.multi(resolve(fields[-1].strip()), labels)


def parse_csv(text: str, shown: str, resolve: Resolve) -> Parsed:
    """``path,label[,split]`` with a header; a header-less two-column file also works."""
    records = [(lineno, row) for lineno, row in _csv_rows(text, shown) if any(cell.strip() for cell in row)]
    if not records:
        return Parsed("csv", [])
    header = [cell.strip().lower() for cell in records[0][1]]
    if len(header) == 2 and header[0].endswith(_IMAGE_SUFFIXES):
        path_col, label_col, split_col = 0, 1, None  # no header: path,label
    else:
        records = records[1:]
        path_col = _column(header, PATH_COLUMNS, shown, "path")
        label_col = _column(header, LABEL_COLUMNS, shown, "label")
        split_col = header.index("split") if "split" in header else None
    multi = any(LABEL_SEPARATOR in row[label_col] for _, row in records if len(row) > label_col)
    rows: list[tuple[Sample, str | None]] = []
    problems: list[str] = []
    for lineno, row in records:
        needed = max(col for col in (path_col, label_col, split_col) if col is not None)
        if multi and len(row) > needed and row[path_col].strip() and not _names(row[label_col]):
            problems.append(f"{shown}:{lineno}: {row[path_col].strip()} has no label; row left out")
            continue
        if len(row) <= needed or not row[path_col].strip() or not row[label_col].strip():
            raise DataError(f"{shown}:{lineno}: cannot parse {','.join(row)!r}: expected a path and a label")
        split = _split(row[split_col], shown, lineno) if split_col is not None else None
        path = resolve(row[path_col].strip())
        sample = Sample.multi(path, _names(row[label_col])) if multi else Sample(path, _label_text(row[label_col].strip()))
        rows.append((sample, split))
    return Parsed("csv", rows, problems=problems)


def _names(cell: str) -> list[str]:
    """``milk|bread`` -> the class names of one multi-label cell."""
    return [_label_text(name.strip()) for name in cell.split(LABEL_SEPARATOR) if name.strip()]


def _csv_rows(text: str, shown: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as error:
        raise DataError(f"{shown}:{reader.line_num}: cannot parse CSV: {error}") from error


def _column(header: list[str], names: tuple[str, ...], shown: str, what: str) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise DataError(
        f"{shown}:1: no {what} column in header {','.join(header)!r}",
        hint=f"name the columns path,label (accepted {what} columns: {', '.join(names)})",
    )


def _split(value: str, shown: str, lineno: int) -> str:
    split = _SPLIT_VALUES.get(value.strip().lower())
    if split is None:
        raise DataError(f"{shown}:{lineno}: unknown split {value!r}", hint="use train, val or test")
    return split


def _label_text(value: object) -> str:
    # 3 and 3.0 and "3" are the same class.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_jsonl(text: str, shown: str, resolve: Resolve) -> Parsed:
    """JSON Lines: ``{"source-ref"|"path": ..., <label key>: ...}``.

    SageMaker Ground Truth names the label key after the labelling job and puts the class
    name in ``<key>-metadata.class-name``, so any single non-source key is the label.
    """
    rows: list[tuple[Sample, str | None]] = []
    ids: dict[str, int] = {}
    problems: list[str] = []
    for lineno, line in _lines(text):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{shown}:{lineno}: not valid JSON: {error.msg}") from error
        if not isinstance(record, dict):
            raise DataError(f"{shown}:{lineno}: expected a JSON object, got {type(record).__name__}")
        source_key = next((key for key in PATH_COLUMNS if key in record), None)
        if source_key is None:
            raise DataError(f"{shown}:{lineno}: no image key in {sorted(record)}", hint='give each line a "source-ref" or "path"')
        label_key = _label_key(record, source_key, shown, lineno)
        value = record[label_key]
        split = _split(str(record["split"]), shown, lineno) if "split" in record else None
        if isinstance(value, list):  # Ground Truth's multi-label shape: ids, named by the metadata's class-map
            sample = _multi_json_row(record, source_key, label_key, f"{shown}:{lineno}", resolve, problems)
            if sample is not None:
                rows.append((sample, split))
            continue
        if isinstance(value, dict) or value is None:
            raise DataError(f"{shown}:{lineno}: label {label_key!r} is {json.dumps(value)}, not a class name or id")
        label = _label_text(value)
        metadata = record.get(f"{label_key}-metadata")
        if isinstance(metadata, dict) and "class-name" in metadata:
            name = str(metadata["class-name"])
            if isinstance(value, (int, float)):
                ids[name] = int(value)
            label = name
        rows.append((Sample(resolve(str(record[source_key])), label), split))
    return Parsed("jsonl", rows, ids, problems=problems)


def _multi_json_row(record: dict[str, Any], source_key: str, label_key: str, where: str, resolve: Resolve,
                    problems: list[str]) -> Sample | None:
    """``{"source-ref": ..., "job": [0, 2], "job-metadata": {"class-map": {"0": "milk", "2": "bread"}}}``
    (or a list of names) -> a multi-label sample; None, with the reason in ``problems``, when unusable."""
    values = record[label_key]
    metadata = record.get(f"{label_key}-metadata")
    class_map = metadata.get("class-map") if isinstance(metadata, dict) else None
    names = []
    for value in values:
        if isinstance(value, (dict, list)) or value is None:
            problems.append(f"{where}: label {json.dumps(value)} is not a class name or id; row left out")
            return None
        text = _label_text(value)
        if isinstance(class_map, dict):
            if text not in class_map:
                problems.append(f"{where}: label id {text} is not in the class-map {sorted(class_map)}; row left out")
                return None
            text = str(class_map[text])
        names.append(text)
    if not names:
        problems.append(f"{where}: {record[source_key]} has no label; row left out")
        return None
    return Sample.multi(resolve(str(record[source_key])), names)


def _label_key(record: dict[str, object], source_key: str, shown: str, lineno: int) -> str:
    if "label" in record:
        return "label"
    candidates = [
        key for key in record
        if key not in PATH_COLUMNS and key != "split" and not key.endswith("-metadata")
    ]  # fmt: skip
    if len(candidates) != 1:
        raise DataError(
            f"{shown}:{lineno}: cannot tell the label key from {sorted(candidates)}",
            hint='name it "label", or leave exactly one key besides the image path',
        )
    return candidates[0]


def parse_id_lines(text: str, shown: str, level: str) -> list[tuple[int, str, int]]:
    """``path, fine_id, coarse_id`` lines -> (line number, path, id at ``level``)."""
    rows = []
    for lineno, line in _lines(text):
        # Split from the right: the ids never hold commas, a path might.
        fields = [f.strip() for f in line.rsplit(",", 2)]
        ids = [_int_label(f) for f in fields[1:]]
        if len(fields) == 3 and None not in ids and fields[0]:
            fine, coarse = ids
        elif len(fields) >= 2 and ids[-1] is not None and level == "fine":
            path, fine_text = line.rsplit(",", 1)
            fields, fine, coarse = [path.strip()], _int_label(fine_text.strip()), None
        else:
            raise DataError(f"{shown}:{lineno}: cannot parse {line.strip()!r}: expected 'path, fine_id, coarse_id'")
        label = coarse if level == "coarse" else fine
        assert label is not None
        rows.append((lineno, fields[0], label))
    return rows


def read_class_table(text: str, shown: str) -> ClassTable:
    """The id-manifest's ``classes.csv``: ``Class Name (str),Class ID (int),Coarse Class
    Name (str),Coarse Class ID (int),...``; columns are found by name, not position."""
    rows = [row for _, row in _csv_rows(text, shown) if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{shown} is empty", hint="it needs a header and one line per class")
    header = [_plain(cell) for cell in rows[0]]
    columns = {}
    for key, name in (("fine_name", "class name"), ("fine_id", "class id"), ("coarse_name", "coarse class name"), ("coarse_id", "coarse class id")):
        if name in header:
            columns[key] = header.index(name)
    if "fine_name" not in columns or "fine_id" not in columns:
        raise DataError(f"{shown}:1: header {','.join(rows[0])!r} lacks 'Class Name' and 'Class ID' columns")
    fine: dict[int, str] = {}
    coarse: dict[int, str] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        try:
            fine[int(row[columns["fine_id"]])] = row[columns["fine_name"]].strip()
            if "coarse_id" in columns and "coarse_name" in columns:
                coarse[int(row[columns["coarse_id"]])] = row[columns["coarse_name"]].strip()
        except (ValueError, IndexError) as error:
            raise DataError(f"{shown}:{lineno}: cannot parse {','.join(row)!r}: {error}") from error
    return ClassTable(fine, coarse)


def _plain(cell: str) -> str:
    """'Class ID (int)' -> 'class id'."""
    return cell.split("(")[0].strip().lower()


def read_label_map(text: str, shown: str) -> dict[int, str]:
    """A label map beside a ``.lst``: ``labels.txt`` (one name per line, line i is id i) or a
    ``classes.csv`` with ``id,name`` rows (either order, optional header) or the
    ``Class Name``/``Class ID`` columns."""
    if shown.endswith(".txt"):
        return {index: line.strip() for index, line in enumerate(l for l in text.splitlines() if l.strip())}
    rows = [row for _, row in _csv_rows(text, shown) if any(cell.strip() for cell in row)]
    header = [_plain(cell) for cell in rows[0]] if rows else []
    if "class name" in header and "class id" in header:
        return read_class_table(text, shown).fine
    mapping: dict[int, str] = {}
    for lineno, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row[:2]]
        numbers = [_int_label(cell) for cell in cells]
        if len(cells) == 2 and numbers[0] is not None:
            mapping[numbers[0]] = cells[1]
        elif len(cells) == 2 and numbers[1] is not None:
            mapping[numbers[1]] = cells[0]
        elif lineno > 1:
            raise DataError(f"{shown}:{lineno}: cannot parse {','.join(row)!r}: expected 'id,name'")
    return mapping


def order_classes(labels: Iterable[str], ids: dict[str, int] | None = None) -> list[str]:
    """Label-index order: by given ids, else numerically when every label is a whole
    number (so "10" follows "9"), else alphabetically."""
    unique = set(labels)
    if ids and unique <= set(ids):
        return sorted(unique, key=lambda name: (ids[name], name))
    if unique and all(_int_label(name) is not None and name.lstrip("-").isdigit() for name in unique):
        return sorted(unique, key=int)
    return sorted(unique)
