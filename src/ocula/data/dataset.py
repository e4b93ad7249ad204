"""The in-memory description of a dataset: which files, which labels, which split."""

from __future__ import annotations

from dataclasses import dataclass

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One labelled image; ``path`` is a local path or an fsspec URL, ``label`` a class name."""

    path: str
    label: str


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
