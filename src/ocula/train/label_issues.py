"""``ocula data check --label-issues``: rank the photos most likely mislabelled.

The pretrained backbone (which never saw these labels) turns every usable labelled photo into
a feature vector once; a logistic regression scores each photo from ``folds`` - 1 folds of the
others (out-of-fold, so a wrong label cannot be memorised), and confident learning
(``ocula.evaluate.label_issues``) flags the photos whose label disagrees confidently with
what the rest of the data says, most likely first.
"""

from __future__ import annotations

import csv
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

from ocula.data import audit, load_source, read_image
from ocula.data.decode_cache import DecodeCache, default_cache_dir
from ocula.errors import DataError, ImageError
from ocula.evaluate.label_issues import find_label_issues
from ocula.evaluate.plots import thumbnail_sheet
from ocula.models import create_model, features_and_head
from ocula.storage.log import RunLog
from ocula.train.batches import CachedImages, Split, cpu_budget
from ocula.train.features import extract

FOLDS = 5
FEATURE_BATCH = 64
GALLERY = 24
COLUMNS = ("rank", "path", "split", "given_label", "suggested_label", "given_probability",
           "suggested_probability")


@dataclass
class LabelIssueReport:
    """The flagged photos (``rows``, most likely first), and what the ranking was made from."""

    rows: list[dict[str, Any]]
    images: int
    noise_rate: float
    model: str
    seconds: float
    probs: np.ndarray = field(repr=False)  # out-of-fold probabilities of every scored photo
    labels: np.ndarray = field(repr=False)
    paths: list[str] = field(repr=False)
    classes: list[str] = field(repr=False)

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        return path

    def sentence(self) -> str:
        share = len(self.rows) / max(self.images, 1)
        return (f"{len(self.rows)} of {self.images} labelled photos ({share:.1%}) look mislabelled "
                f"(confident learning on out-of-fold predictions from {self.model} features)")


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, *, folds: int = FOLDS,
                              seed: int = 0) -> np.ndarray:
    """Each row scored by a logistic regression fitted on the other folds (stratified)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    k = int(labels.max()) + 1
    probs = np.zeros((len(labels), k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with fewer photos than folds: sklearn warns, still splits
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, labels)
        for fit, held in splits:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500))
            model.fit(features[fit], labels[fit])
            probs[np.ix_(held, model.classes_)] = model.predict_proba(features[held])
    return probs


def label_issues(data: str | Path, *, model: str = "tf_efficientnet_lite0", label_level: str = "fine",
                 folds: int = FOLDS, seed: int = 0, cache_dir: str | None = None,
                 log: RunLog | None = None) -> LabelIssueReport:
    """Rank the usable labelled photos of ``data`` (every split) by how likely their label is wrong."""
    began = time.perf_counter()
    log = log or RunLog(quiet=True)
    source = load_source(data, label_level=label_level)
    with log.progress("auditing images", sum(len(s) for s in source.splits().values())) as advance:
        report = audit(source, progress=lambda done, total: advance(1))
    if source.multi_label:
        raise DataError(f"{data} is multi-label: ranking label issues works on one label per image for now",
                        hint="run it on a single-label copy of the manifest")
    samples = [(split, s) for split, items in source.splits().items() for s in report.usable(items)]
    classes = sorted({s.label for _, s in samples})
    counts = np.bincount([classes.index(s.label) for _, s in samples], minlength=len(classes))
    if len(classes) < 2 or (counts >= 2).sum() < 2:
        raise DataError(f"{data}: label issues need at least two classes with two usable photos each")
    if len(samples) < 2 * folds:
        raise DataError(f"{data}: {len(samples)} usable photos are too few for {folds}-fold scoring",
                        hint=f"label issues need at least {2 * folds} photos")

    threads, _ = cpu_budget(None)
    torch.set_num_threads(threads)
    net, pre, _ = create_model(model, len(classes))
    net.eval()
    cache = DecodeCache(Path(cache_dir) if cache_dir else default_cache_dir(), pre.resize_short_side)
    pairs = [(s.path, report.digests[s.path]) for _, s in samples]
    with log.progress("decoding images once", len(pairs)) as advance:
        cache.ensure(pairs, progress=lambda done, total: advance(1))
    kept = [(split, s) for split, s in samples if s.path not in cache.failed]
    for path, reason in sorted(cache.failed.items()):
        log.warn(f"skipped {path}: {reason}")
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[s.label] for _, s in kept], dtype=np.int64)
    split = Split([s.path for _, s in kept], [report.digests[s.path] for _, s in kept], labels)
    features_of, _ = features_and_head(net)
    features = extract(features_of, CachedImages(cache, split, v2.CenterCrop(pre.input_size)), pre.normalize,
                       batch_size=FEATURE_BATCH, workers=0, log=log, description="features").numpy()
    log.line(f"scoring {len(kept)} photos out of fold ({folds} folds, logistic regression on {model} features)")
    probs = out_of_fold_probabilities(features, labels, folds=folds, seed=seed)
    found = find_label_issues(probs, labels)
    rows = [{"rank": rank, "path": kept[i][1].path, "split": kept[i][0], "given_label": classes[labels[i]],
             "suggested_label": classes[found.suggested[i]],
             "given_probability": round(float(found.self_confidence[i]), 4),
             "suggested_probability": round(float(probs[i, found.suggested[i]]), 4)}
            for rank, i in enumerate(found.order.tolist(), start=1)]
    return LabelIssueReport(rows, len(kept), found.noise_rate, model, time.perf_counter() - began, probs, labels,
                            [s.path for _, s in kept], classes)


def write_gallery(result: LabelIssueReport, path: str | Path, most: int = GALLERY) -> Path | None:
    """A contact sheet of the first ``most`` flagged photos: given and suggested label."""
    tiles, titles = [], []
    for row in result.rows[:most]:
        try:
            image = read_image(row["path"])
        except ImageError:  # changed on disk since it was scored: leave it out of the picture
            continue
        image.thumbnail((160, 160))
        tiles.append(np.asarray(image))
        titles.append(f"#{row['rank']} given: {row['given_label']} ({row['given_probability']:.2f})\n"
                      f"suggested: {row['suggested_label']} ({row['suggested_probability']:.2f})")
    png = thumbnail_sheet(tiles, titles)
    if png is None:
        return None
    path = Path(path)
    path.write_bytes(png)
    return path
