"""The in-memory description of a dataset: which files, which labels, which split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SPLIT_NAMES = ("train", "val", "test")
LABEL_SEPARATOR = "|"  # a multi-label CSV cell: milk|bread


@dataclass(frozen=True)
class Sample:
    """One labelled image; ``path`` is a local path or an fsspec URL, ``label`` a class name.

    A multi-label image has ``labels`` (every class it shows) and ``label`` is them joined
    by ``|``: the combination, which splits stratify on."""

    path: str
    label: str
    labels: tuple[str, ...] = ()

    @classmethod
    def multi(cls, path: str, labels: Sequence[str]) -> Sample:
        unique = tuple(dict.fromkeys(labels))
        return cls(path, LABEL_SEPARATOR.join(unique), unique)

    @property
    def names(self) -> tuple[str, ...]:
        """The image's classes: one, or several for a multi-label image."""
        return self.labels or (self.label,)


@dataclass
class DataSource:
    """What a reader found: the class names in label-index order and the samples per split.

    ``val`` and ``test`` are ``None`` when the layout has no such split (as opposed to an
    empty list, which would mean the split exists but holds nothing).
    """

    root: str
    format: str
    classes: list[str]
    train: list[Sample]
    val: list[Sample] | None = None
    test: list[Sample] | None = None
    multi_label: bool = False  # images carry several labels (Sample.labels)
    problems: list[str] = field(default_factory=list)  # manifest rows left out, "file:line: why"

    def splits(self) -> dict[str, list[Sample]]:
        """The splits that exist, in train, val, test order."""
        found = {"train": self.train, "val": self.val, "test": self.test}
        return {name: samples for name, samples in found.items() if samples is not None}

    def all_samples(self) -> list[Sample]:
        """Every sample of every split, train first."""
        return [sample for samples in self.splits().values() for sample in samples]

    def class_index(self) -> dict[str, int]:
        """Class name -> label index (the position in ``classes``)."""
        return {name: index for index, name in enumerate(self.classes)}
