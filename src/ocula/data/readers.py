"""Find the images and labels under a path, whatever layout it uses.

``load_source`` looks at the path once and picks the first layout that fits:

1. a folder with ``train.txt`` + ``classes.csv``: lines ``path, fine_id, coarse_id``;
2. a folder with ``train.lst`` / ``train.csv`` / ``train.jsonl`` (+ ``val``/``validation``,
   ``test``): one manifest per split; or SageMaker's channel folders ``train_lst/`` +
   ``train/`` (+ ``validation_lst/`` + ``validation/``);
3. a folder with ``train/`` (+ ``val/`` or ``validation/``, ``test/``), each a folder per class;
4. a folder of class folders;
5. a single ``.lst``, ``.csv`` or JSON Lines (``.jsonl``/``.manifest``/``.json``) file.

Files go through fsspec so ``s3://`` and friends work when their package is installed;
local paths come back as plain absolute strings.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any

import fsspec

from ocula.data import manifests
from ocula.data.dataset import DataSource, Sample
from ocula.errors import DataError, UsageError, unknown

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
LABEL_LEVELS = ("fine", "coarse")
ACCEPTED_LAYOUTS = (
    "a folder of class folders, train/ + val/ folders of class folders, a SageMaker .lst file, "
    "a CSV (path,label) or JSON Lines manifest, or train.txt + classes.csv"
)
_SPLIT_ALIASES = {"train": ("train", "training"), "val": ("val", "validation"), "test": ("test",)}
_MANIFEST_SUFFIXES = (".lst", ".csv", ".jsonl", ".manifest")
_SINGLE_FILE_SUFFIXES = (*_MANIFEST_SUFFIXES, ".json")
# macOS zip archives carry a __MACOSX shadow tree of resource forks named like the images.
_IGNORED_NAMES = frozenset({"__MACOSX"})


@dataclass
class Location:
    """A filesystem and a path on it; turns filesystem paths into what users see."""

    fs: Any
    path: str

    @property
    def local(self) -> bool:
        return "file" in _protocols(self.fs)

    def url(self, fs_path: str) -> str:
        return fs_path if self.local else self.fs.unstrip_protocol(fs_path)

    def join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts) if self.local else posixpath.join(self.path, *parts)

    def resolve(self, entry: str, base: str) -> str:
        """A manifest entry as a user-facing path: URLs and absolute paths stay, the rest
        is relative to ``base`` (the manifest's folder)."""
        if "://" in entry:
            return entry
        if self.local:
            return entry if os.path.isabs(entry) else os.path.normpath(os.path.join(base, entry))
        return self.url(posixpath.join(base, entry.lstrip("/")))

    def read_text(self, fs_path: str) -> str:
        # utf-8-sig drops the byte-order mark spreadsheet programs put in front of CSVs.
        data: bytes = self.fs.cat_file(fs_path)
        return data.decode("utf-8-sig")


def load_source(path: str | os.PathLike[str], *, label_level: str = "fine") -> DataSource:
    """Detect the layout under ``path`` and list its samples; see the module docstring."""
    if label_level not in LABEL_LEVELS:
        raise unknown("label level", str(label_level), LABEL_LEVELS)
    url = os.fspath(path)
    loc = _locate(url if "://" in url else os.path.expanduser(url))
    if loc.fs.isfile(loc.path):
        source = _load_file(loc)
    else:
        source = _load_directory(loc, label_level)
    if label_level == "coarse" and source.format != "id_manifest":
        raise UsageError(
            f"label_level='coarse' needs the 'path, fine_id, coarse_id' manifest, but {source.root} "
            f"is a {source.format} layout",
            hint="use label_level='fine', or point at the folder holding train.txt and classes.csv",
        )
    if not any(source.splits().values()):
        raise DataError(f"no images found in {source.root} ({source.format} layout)", hint=f"ocula accepts {ACCEPTED_LAYOUTS}")
    return source


def _locate(url: str) -> Location:
    try:
        fs, fs_path = fsspec.core.url_to_fs(url)
    except ImportError as error:
        raise DataError(f"cannot open {url!r}: {error}", hint="install the fsspec backend for that URL, e.g. pip install s3fs") from error
    except ValueError as error:
        raise DataError(f"cannot open {url!r}: {error}", hint="check the URL's protocol") from error
    loc = Location(fs, fs_path.rstrip("/") or fs_path)
    if not fs.exists(loc.path):
        raise DataError(f"data path {url!r} does not exist", hint="check the spelling; give a folder or a manifest file")
    return loc


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _load_file(loc: Location) -> DataSource:
    suffix = posixpath.splitext(loc.path)[1].lower()
    if suffix not in _SINGLE_FILE_SUFFIXES:
        raise DataError(
            f"{loc.url(loc.path)} is a {suffix or 'suffix-less'} file, not a dataset",
            hint=f"ocula accepts {ACCEPTED_LAYOUTS}",
        )
    parsed = _parse_manifest(loc, loc.path)
    by_split: dict[str, list[Sample]] = {}
    for sample, split in parsed.rows:
        by_split.setdefault(split or "train", []).append(sample)
    classes, relabel = _class_names(loc, posixpath.dirname(loc.path), parsed.fmt, parsed.rows, parsed.ids,
                                    parsed.declared)
    return _source(loc, parsed.fmt, classes, by_split, relabel, parsed.problems)


def _load_directory(loc: Location, label_level: str) -> DataSource:
    entries = loc.fs.ls(loc.path, detail=True)
    files = {_basename(e["name"]): e["name"] for e in entries if e["type"] == "file"}
    dirs = {_basename(e["name"]): e["name"] for e in entries if e["type"] == "directory"}
    # A root with train.txt + classes.csv also has train/ folders, nested below class
    # groups; the manifest carries the real labels, so it must win.
    if "train.txt" in files and "classes.csv" in files:
        return _load_id_manifest(loc, files, label_level)
    if "train_lst" in dirs:
        return _load_sagemaker_channels(loc, dirs)
    split_files = _split_entries(files, manifests_only=True)
    if "train" in split_files:
        return _load_split_manifests(loc, split_files)
    split_dirs = _split_entries(dirs, manifests_only=False)
    if "train" in split_dirs:
        by_split: dict[str, list[Sample]] = {}
        classes: set[str] = set()
        for split, folder in split_dirs.items():
            names, by_split[split] = _scan_class_folders(loc, folder)
            classes.update(names)
        return _source(loc, "split_folders", sorted(classes), by_split)
    names, samples = _scan_class_folders(loc, loc.path)
    if not samples:
        raise DataError(
            f"no images found in {loc.url(loc.path)}: no class folders with image files "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))}), no train/ folder and no manifest",
            hint=f"ocula accepts {ACCEPTED_LAYOUTS}",
        )
    return _source(loc, "class_folders", names, {"train": samples})


def _split_entries(names: dict[str, str], *, manifests_only: bool) -> dict[str, str]:
    """Map split -> path for entries named after a split (``val`` or ``validation``...);
    with ``manifests_only``, only files such as ``val.lst`` or ``train.csv`` count."""
    found: dict[str, str] = {}
    for name, path in sorted(names.items()):
        stem, suffix = posixpath.splitext(name) if manifests_only else (name, "")
        if manifests_only and suffix.lower() not in _MANIFEST_SUFFIXES:
            continue
        for split, aliases in _SPLIT_ALIASES.items():
            if stem.lower() in aliases and split not in found:
                found[split] = path
    return found


def _scan_class_folders(loc: Location, folder: str) -> tuple[list[str], list[Sample]]:
    """Class names (sorted, SageMaker's convention) and the image files below each class
    folder, at any depth. Empty class folders still count as classes so the audit can
    say that they are empty."""
    classes = sorted(
        _basename(e["name"])
        for e in loc.fs.ls(folder, detail=True)
        if e["type"] == "directory" and not _ignored(_basename(e["name"]))
    )
    samples = []
    prefix = folder.rstrip("/") + "/"
    for fs_path in sorted(loc.fs.find(folder)):
        parts = fs_path[len(prefix):].split("/")
        if len(parts) < 2 or any(_ignored(part) for part in parts):
            continue  # a loose file in the root has no class
        if posixpath.splitext(parts[-1])[1].lower() in IMAGE_EXTENSIONS:
            samples.append(Sample(loc.url(fs_path), parts[0]))
    return classes, samples


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_NAMES


def _load_id_manifest(loc: Location, files: dict[str, str], label_level: str) -> DataSource:
    table = manifests.read_class_table(loc.read_text(files["classes.csv"]), loc.url(files["classes.csv"]))
    names = table.coarse if label_level == "coarse" else table.fine
    by_split = {}
    for split, aliases in _SPLIT_ALIASES.items():
        name = next((f"{alias}.txt" for alias in aliases if f"{alias}.txt" in files), None)
        if name is None:
            continue
        shown = loc.url(files[name])
        rows = manifests.parse_id_lines(loc.read_text(files[name]), shown, label_level)
        samples = []
        for lineno, entry, label_id in rows:
            if label_id not in names:
                raise DataError(
                    f"{shown}:{lineno}: {label_level} class id {label_id} is not in classes.csv",
                    hint=f"classes.csv defines ids {min(names)}..{max(names)}",
                )
            samples.append(Sample(loc.resolve(entry, loc.path), names[label_id]))
        by_split[split] = samples
    classes = [names[key] for key in sorted(names)]
    return _source(loc, "id_manifest", classes, by_split)


def _load_split_manifests(loc: Location, split_files: dict[str, str]) -> DataSource:
    by_split: dict[str, list[Sample]] = {}
    all_rows: list[tuple[Sample, str | None]] = []
    ids: dict[str, int] = {}
    formats = set()
    declared: list[str] = []
    problems: list[str] = []
    for split, fs_path in split_files.items():
        parsed = _parse_manifest(loc, fs_path)
        formats.add(parsed.fmt)
        ids.update(parsed.ids)
        declared = max(declared, parsed.declared, key=len)
        problems += parsed.problems
        by_split[split] = [sample for sample, _ in parsed.rows]
        all_rows.extend(parsed.rows)
    fmt = formats.pop() if len(formats) == 1 else "mixed_manifests"
    classes, relabel = _class_names(loc, loc.path, fmt, all_rows, ids, declared)
    return _source(loc, fmt, classes, by_split, relabel, problems)


def _load_sagemaker_channels(loc: Location, dirs: dict[str, str]) -> DataSource:
    """SageMaker's channel folders: ``train_lst/*.lst`` list images relative to ``train/``,
    ``validation_lst/`` to ``validation/``."""
    by_split: dict[str, list[Sample]] = {}
    all_rows: list[tuple[Sample, str | None]] = []
    declared: list[str] = []
    problems: list[str] = []
    for split, channel in (("train", "train"), ("val", "validation"), ("test", "test")):
        lst_dir = dirs.get(f"{channel}_lst")
        if lst_dir is None:
            continue
        lst_files = sorted(p for p in loc.fs.find(lst_dir) if p.endswith(".lst"))
        if not lst_files:
            raise DataError(f"{loc.url(lst_dir)} holds no .lst file", hint=f"put the {channel} image list there")
        base = dirs.get(channel, lst_dir)
        by_split[split] = []
        for fs_path in lst_files:
            parsed = manifests.parse_lst(loc.read_text(fs_path), loc.url(fs_path), lambda entry: loc.resolve(entry, base))
            by_split[split].extend(sample for sample, _ in parsed.rows)
            all_rows.extend(parsed.rows)
            declared = max(declared, parsed.declared, key=len)
            problems += parsed.problems
    classes, relabel = _class_names(loc, loc.path, "lst", all_rows, {}, declared)
    return _source(loc, "lst", classes, by_split, relabel, problems)


def _parse_manifest(loc: Location, fs_path: str) -> manifests.Parsed:
    suffix = posixpath.splitext(fs_path)[1].lower()
    text = loc.read_text(fs_path)
    shown = loc.url(fs_path)
    base = posixpath.dirname(fs_path) if not loc.local else os.path.dirname(fs_path)
    resolve = lambda entry: loc.resolve(entry, base)  # noqa: E731 - a one-line closure
    if suffix == ".lst":
        return manifests.parse_lst(text, shown, resolve)
    if suffix == ".csv":
        return manifests.parse_csv(text, shown, resolve)
    return manifests.parse_jsonl(text, shown, resolve)


def _class_names(
    loc: Location, folder: str, fmt: str, rows: list[tuple[Sample, str | None]], ids: dict[str, int],
    declared: list[str] | None = None,
) -> tuple[list[str], dict[str, str] | None]:
    """Class names in label-index order, and for .lst files with a label map the id -> name
    renaming to apply to the samples (a multi-label row naming an id the map lacks is left out
    later, by ``_source``; a single-label file with such ids is an error)."""
    labels = {name for sample, _ in rows for name in sample.names} | set(declared or ())
    multi = any(sample.labels for sample, _ in rows)
    if fmt == "lst":
        label_map = _label_map_beside(loc, folder)
        if label_map is not None:
            missing = sorted(labels - {str(key) for key in label_map}, key=int)
            if missing and not multi:
                raise DataError(
                    f"label ids {', '.join(missing)} of the .lst file are not in the label map beside it",
                    hint="add them to classes.csv / labels.txt, or remove the label map to use the ids as names",
                )
            return [label_map[key] for key in sorted(label_map)], {str(key): name for key, name in label_map.items()}
    return manifests.order_classes(labels, ids), None


def _label_map_beside(loc: Location, folder: str) -> dict[int, str] | None:
    for name in ("classes.csv", "labels.txt"):
        fs_path = posixpath.join(folder, name) if not loc.local else os.path.join(folder, name)
        if loc.fs.exists(fs_path):
            return manifests.read_label_map(loc.read_text(fs_path), loc.url(fs_path))
    return None


def _source(
    loc: Location, fmt: str, classes: list[str], by_split: dict[str, list[Sample]], relabel: dict[str, str] | None = None,
    problems: list[str] | None = None,
) -> DataSource:
    problems = list(problems or [])
    multi = any(s.labels for samples in by_split.values() for s in samples)
    if relabel is not None:
        by_split = {split: [r for r in (_relabel(s, relabel, problems) for s in samples) if r is not None]
                    for split, samples in by_split.items()}
    return DataSource(
        root=loc.url(loc.path),
        format=fmt,
        classes=classes,
        train=by_split.get("train", []),
        val=by_split.get("val"),
        test=by_split.get("test"),
        multi_label=multi,
        problems=problems,
    )


def _relabel(sample: Sample, relabel: dict[str, str], problems: list[str]) -> Sample | None:
    if not sample.labels:
        return Sample(sample.path, relabel[sample.label])
    unknown = [name for name in sample.labels if name not in relabel]
    if unknown:
        problems.append(f"{sample.path}: label id(s) {', '.join(unknown)} are not in the label map; left out")
        return None
    return Sample.multi(sample.path, [relabel[name] for name in sample.labels])


def _basename(fs_path: str) -> str:
    return posixpath.basename(fs_path.rstrip("/"))
