"""``ocula data check``: one pass over every file, then findings a person can act on.

Unusable files are skipped with a reason, not fatal. Duplicates within a split are
warnings; the same photo (or a near copy) in train and in val/test is an error, because it
inflates validation accuracy and hides overfitting.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ocula.data.audit_files import FileResult, ResultStore, inspect_file
from ocula.data.dataset import DataSource, Sample
from ocula.data.decode_cache import default_cache_dir
from ocula.data.imageio import REASONS
from ocula.data.phash import hash_array, near_pairs

LEVELS = ("error", "warning", "info")
NEAR_DUPLICATE_DISTANCE = 4  # of 64 pHash bits; re-encodes and resizes land at 0-2
AUDIT_FILENAME = "data_audit.json"
_FORMAT_VERSION = 1

Progress = Callable[[int, int], None]


@dataclass
class Finding:
    """One thing the audit wants a person to know; ``path`` and ``split`` when it is about one file."""

    level: str
    code: str
    message: str
    path: str | None = None
    split: str | None = None


@dataclass
class AuditReport:
    """What ``audit`` found. ``counts`` and ``digests`` cover usable files only."""

    findings: list[Finding] = field(default_factory=list)
    unusable: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # images per class (per label: multi-label)
    labels: dict[str, Any] = field(default_factory=dict)  # multi-label data: labels per image, co-occurrence
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def by_code(self) -> dict[str, int]:
        """How many findings of each code, e.g. for a one-line summary."""
        totals: dict[str, int] = defaultdict(int)
        for finding in self.findings:
            totals[finding.code] += 1
        return dict(sorted(totals.items()))

    def usable(self, samples: list[Sample]) -> list[Sample]:
        return [sample for sample in samples if sample.path not in self.unusable]

    def apply(self, source: DataSource) -> DataSource:
        """A copy of ``source`` without the unusable files."""
        return replace(
            source,
            train=self.usable(source.train),
            val=None if source.val is None else self.usable(source.val),
            test=None if source.test is None else self.usable(source.test),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _FORMAT_VERSION,
            "settings": self.settings,
            "seconds": round(self.seconds, 3),
            "summary": self.by_code(),
            "counts": self.counts,
            **({"labels": self.labels} if self.labels else {}),
            "unusable": self.unusable,
            "findings": [asdict(finding) for finding in self.findings],
            "digests": self.digests,
        }

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the report; a directory gets ``data_audit.json`` inside it."""
        target = Path(path)
        if target.is_dir():
            target = target / AUDIT_FILENAME
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return target

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditReport:
        return cls(
            findings=[Finding(**item) for item in data.get("findings", [])],
            unusable=dict(data.get("unusable", {})),
            digests=dict(data.get("digests", {})),
            counts={split: dict(counts) for split, counts in data.get("counts", {}).items()},
            labels=dict(data.get("labels", {})),
            settings=dict(data.get("settings", {})),
            seconds=float(data.get("seconds", 0.0)),
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> AuditReport:
        target = Path(path)
        if target.is_dir():
            target = target / AUDIT_FILENAME
        return cls.from_dict(json.loads(target.read_text(encoding="utf-8")))


def audit(
    source: DataSource,
    *,
    min_side: int = 32,
    min_per_class: int = 5,
    imbalance_ratio: float = 10.0,
    workers: int = 2,
    progress: Progress | None = None,
    cache: bool | str | os.PathLike[str] = True,
) -> AuditReport:
    """Check every file of every split of ``source``; see the module docstring.

    ``cache`` keeps per-file results by content hash in ``audit.sqlite`` under the decode
    cache root (True: ``default_cache_dir()``; a path: that root; False: no cache).
    """
    started = time.perf_counter()
    paths = list(dict.fromkeys(sample.path for sample in source.all_samples()))
    store = None if cache is False else ResultStore(_cache_root(cache) / "audit.sqlite")
    known = store.load() if store else {}
    results = _inspect_all(paths, known, workers, progress)
    if store:
        store.save(r for r in results.values() if r.sha1 not in known)

    report = AuditReport(settings={
        "min_side": min_side, "min_per_class": min_per_class, "imbalance_ratio": imbalance_ratio,
        "near_duplicate_distance": NEAR_DUPLICATE_DISTANCE, "root": source.root, "format": source.format,
        "files": len(paths),
    })  # fmt: skip
    report.findings += [Finding("warning", "row_left_out", problem) for problem in source.problems]
    _file_findings(report, source, results, min_side)
    usable = {
        split: [s for s in samples if s.path not in report.unusable]
        for split, samples in source.splits().items()
    }
    for split, samples in usable.items():
        _duplicate_findings(report, split, samples, results)
    for split in ("val", "test"):
        if split in usable and "train" in usable:
            _leakage_findings(report, split, usable[split], usable["train"], results)
    _class_findings(report, source, usable, min_per_class, imbalance_ratio)
    order = {level: index for index, level in enumerate(LEVELS)}
    report.findings.sort(key=lambda f: order[f.level])
    report.seconds = time.perf_counter() - started
    return report


def _cache_root(cache: bool | str | os.PathLike[str]) -> Path:
    return default_cache_dir() if cache is True else Path(cache)


def _inspect_all(
    paths: list[str], known: dict[str, FileResult], workers: int, progress: Progress | None
) -> dict[str, FileResult]:
    # Threads, not processes: hashing and Pillow's decoders release the GIL.
    results: dict[str, FileResult] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(inspect_file, path, known) for path in paths]
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            results[result.path] = result
            if progress is not None:
                progress(done, len(paths))
    return results


def _file_findings(report: AuditReport, source: DataSource, results: dict[str, FileResult], min_side: int) -> None:
    seen: set[str] = set()
    for split, samples in source.splits().items():
        for sample in samples:
            if sample.path in seen:
                continue
            seen.add(sample.path)
            result = results[sample.path]
            reason, detail = result.reason, result.detail
            if reason is None and min(result.width, result.height) < min_side:
                reason, detail = "too_small", f"{result.width}x{result.height} pixels, min_side is {min_side}"
            if reason is not None:
                report.unusable[sample.path] = reason
                explained = REASONS.get(reason, reason) + (f": {detail}" if detail else "")
                report.findings.append(Finding("warning", reason, f"skipped {sample.path}: {explained}", sample.path, split))
                continue
            assert result.sha1 is not None
            report.digests[sample.path] = result.sha1
            conversions = [note for note in result.notes if note != "exif_rotated"]
            if conversions:
                report.findings.append(Finding("info", "mode_converted", f"{sample.path}: {', '.join(conversions)} to RGB", sample.path, split))
            if "exif_rotated" in result.notes:
                report.findings.append(Finding("info", "exif_rotated", f"{sample.path}: rotated upright by its EXIF orientation", sample.path, split))


def _unique_by_content(samples: list[Sample], results: dict[str, FileResult]) -> list[Sample]:
    first: dict[str | None, Sample] = {}
    for sample in samples:
        first.setdefault(results[sample.path].sha1, sample)
    return list(first.values())


def _duplicate_findings(report: AuditReport, split: str, samples: list[Sample], results: dict[str, FileResult]) -> None:
    by_sha1: dict[str | None, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_sha1[results[sample.path].sha1].append(sample)
    for group in by_sha1.values():
        keep = group[0]
        for copy in group[1:]:
            if copy.path == keep.path:
                message = f"{copy.path} is listed more than once in {split}"
            else:
                message = f"{copy.path} has the same bytes as {keep.path}{_label_clash(copy, keep)}; keep one copy"
            report.findings.append(Finding("warning", "duplicate", message, copy.path, split))
    # Near duplicates among distinct contents only, so exact copies are not reported twice.
    unique = _unique_by_content(samples, results)
    hashes = hash_array([results[s.path].phash or 0 for s in unique])
    reported: set[int] = set()
    for i, j, distance in near_pairs(hashes, max_distance=NEAR_DUPLICATE_DISTANCE):
        if j in reported:
            continue
        reported.add(j)
        copy, keep = unique[j], unique[i]
        report.findings.append(Finding(
            "warning", "near_duplicate",
            f"{copy.path} looks like {keep.path} (pHash distance {distance}){_label_clash(copy, keep)}",
            copy.path, split,
        ))  # fmt: skip


def _leakage_findings(
    report: AuditReport, split: str, samples: list[Sample], train: list[Sample], results: dict[str, FileResult]
) -> None:
    train_by_sha1 = {results[s.path].sha1: s for s in reversed(train)}
    leaked: set[str] = set()
    for sample in samples:
        twin = train_by_sha1.get(results[sample.path].sha1)
        if twin is not None:
            leaked.add(sample.path)
            report.findings.append(Finding(
                "error", "leakage",
                f"{sample.path} in {split} has the same bytes as train image {twin.path}; "
                f"it inflates {split} accuracy, remove it from one split",
                sample.path, split,
            ))  # fmt: skip
    rest = [s for s in _unique_by_content(samples, results) if s.path not in leaked]
    unique_train = _unique_by_content(train, results)
    pairs = near_pairs(
        hash_array([results[s.path].phash or 0 for s in rest]),
        hash_array([results[s.path].phash or 0 for s in unique_train]),
        max_distance=NEAR_DUPLICATE_DISTANCE,
    )
    for i, j, distance in sorted(pairs, key=lambda pair: (pair[0], pair[2])):
        sample = rest[i]
        if sample.path in leaked:
            continue
        leaked.add(sample.path)
        report.findings.append(Finding(
            "error", "leakage",
            f"{sample.path} in {split} is a near copy of train image {unique_train[j].path} "
            f"(pHash distance {distance}); it inflates {split} accuracy, remove it from one split",
            sample.path, split,
        ))  # fmt: skip


def _multi_label_findings(report: AuditReport, usable: dict[str, list[Sample]], most_pairs: int = 10) -> None:
    """Labels per image, the most frequent pairs, and labels that validation or test use but training never shows."""
    for split, samples in usable.items():
        per_image = [len(s.names) for s in samples]
        pairs: dict[tuple[str, str], int] = defaultdict(int)
        for sample in samples:
            names = sorted(sample.names)
            for i, first in enumerate(names):
                for second in names[i + 1:]:
                    pairs[(first, second)] += 1
        top = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:most_pairs]
        report.labels[split] = {
            "images": len(samples), "mean_labels_per_image": round(sum(per_image) / max(len(samples), 1), 3),
            "labels_per_image": {str(k): per_image.count(k) for k in sorted(set(per_image))},
            "top_pairs": [[a, b, n] for (a, b), n in top],
        }
    train = report.counts.get("train", {})
    for split in ("val", "test"):
        unseen = sorted(name for name, n in report.counts.get(split, {}).items() if n and not train.get(name))
        if unseen:
            report.findings.append(Finding(
                "warning", "label_never_trained",
                f"{split} uses label(s) {', '.join(map(repr, unseen))} that no usable training image has: "
                "the model cannot learn them", split=split))


def _label_clash(copy: Sample, keep: Sample) -> str:
    return "" if copy.label == keep.label else f" but is labelled {copy.label!r}, not {keep.label!r}"


def _class_findings(
    report: AuditReport,
    source: DataSource,
    usable: dict[str, list[Sample]],
    min_per_class: int,
    imbalance_ratio: float,
) -> None:
    for split, samples in usable.items():
        counts = dict.fromkeys(source.classes, 0)
        for sample in samples:
            for name in sample.names:
                counts[name] = counts.get(name, 0) + 1
        report.counts[split] = counts
    if source.multi_label:
        _multi_label_findings(report, usable)
    train = report.counts.get("train", {})
    for name, count in train.items():
        if count == 0:
            report.findings.append(Finding(
                "error", "empty_class",
                f"class {name!r} has no usable training image; add photos or remove the class",
                split="train",
            ))  # fmt: skip
        elif count < min_per_class:
            report.findings.append(Finding(
                "warning", "few_images",
                f"class {name!r} has {count} usable training image(s), fewer than min_per_class={min_per_class}",
                split="train",
            ))  # fmt: skip
    present = {name: count for name, count in train.items() if count > 0}
    if len(present) >= 2:
        largest = max(present, key=lambda name: present[name])
        smallest = min(present, key=lambda name: present[name])
        ratio = present[largest] / present[smallest]
        if ratio > imbalance_ratio:
            report.findings.append(Finding(
                "warning", "imbalance",
                f"classes are imbalanced: {largest!r} has {present[largest]} training images, {smallest!r} only "
                f"{present[smallest]} ({ratio:.1f}x > imbalance_ratio={imbalance_ratio:g}); "
                "consider class weights or more photos of the small classes",
                split="train",
            ))  # fmt: skip
