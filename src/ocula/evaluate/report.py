"""report.html: one self-contained page (every image embedded) plus the PNGs beside it.

``render_report(out, report, gallery)`` takes the JSON-ready report dict the evaluation job
built and the confident mistakes' thumbnails; it writes ``out/report.html`` and
``out/plots/*.png``. Every string that came from the user's data (class names, paths) is
escaped: a file called ``<script>.jpg`` stays text.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ocula.evaluate.html import PAGE as _PAGE
from ocula.evaluate.html import img as _img
from ocula.evaluate.html import section as _section
from ocula.evaluate.html import table as _table
from ocula.evaluate.metrics import selective_sentence

LEVEL_LABEL = {"major": "act on this", "minor": "worth fixing", "info": "note"}


@dataclass(frozen=True)
class GalleryItem:
    """One confident mistake: its thumbnail (HWC uint8) and what the model said."""

    thumbnail: np.ndarray
    path: str
    true_label: str
    predicted_label: str
    probability: float  # of the predicted class
    true_probability: float
    crop: np.ndarray | None = None  # CHW uint8 as the model saw it (to explain it), not rendered
    heatmaps: tuple[np.ndarray, np.ndarray] | None = None  # HWC overlays: where it looked for predicted, true


def render_report(out: Path, report: dict[str, Any], gallery: list[GalleryItem]) -> Path:
    """Write ``out/report.html`` and ``out/plots/*.png``; return the HTML path."""
    out = Path(out)
    figures = _figures(report, gallery)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        (out / "plots" / f"{name}.png").write_bytes(png)
    sections = [
        _headline(report),
        _diagnosis(report["findings"]),
        _robustness(report.get("robustness"), figures.get("robustness")),
        _section("learning", "Learning curves", _img(figures.get("learning_curves"), "learning curves")
                 or "<p>No per-epoch history in this run.</p>"),
        _confusion(report["summary"], figures["confusion"]),
        _per_class(report["summary"]),
        _section("calibration", "Calibration",
                 f"<p>Expected calibration error {report['summary']['calibration']['ece']:.3f}: how far the "
                 "model's confidence is from its accuracy (0 is perfect).</p>" + _fitted(report.get("calibration"))
                 + _img(figures["reliability"], "reliability diagram")),
        _selective(report["summary"].get("selective"), figures.get("coverage")),
        _gallery(gallery, report["summary"]),
    ]
    return _write_page(out, report, sections)


def _write_page(out: Path, report: dict[str, Any], sections: list[str]) -> Path:
    """The sections, then the skipped files and the footer, as ``out/report.html``."""
    sections = [*sections, _skipped(report.get("skipped", [])), _footer(report)]
    page = _PAGE.format(title=escape(report["title"]), body="\n".join(x for x in sections if x))
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def render_multilabel_report(out: Path, report: dict[str, Any], gallery: list[GalleryItem]) -> Path:
    """The multi-label report: mAP and F1 first, the per-label table, what is missed and what is
    wrongly added, and the most confident false positives."""
    from ocula.evaluate import plots

    out = Path(out)
    s = report["summary"]
    figures = {name: png for name, png in {"learning_curves": plots.learning_curves(report.get("history") or []),
                                           "gallery": plots.error_gallery(gallery)}.items() if png is not None}
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        (out / "plots" / f"{name}.png").write_bytes(png)
    cards = [("mAP", f"{s['mAP']:.3f}"), ("micro F1", f"{s['micro_f1']:.3f}"), ("macro F1", f"{s['macro_f1']:.3f}"),
             ("exact label sets", f"{s['accuracy']:.3f}"), ("Hamming loss", f"{s['hamming_loss']:.3f}"),
             ("labels per image", f"{s['cardinality']:.2f} true / {s['predicted_cardinality']:.2f} predicted"),
             ("images", str(s["n"]))]
    head = "".join(f'<div class="card"><div class="value">{escape(v)}</div><div class="label">{escape(k)}</div></div>'
                   for k, v in cards)
    model = report["model"]
    meta = (f"run <code>{escape(report['run'])}</code> &middot; data <code>{escape(report['data'])}</code> "
            f"({escape(report['split'])}) &middot; {escape(model['arch'])}, mode {escape(model['mode'])} &middot; "
            f"multi-label, {s['labels']} labels &middot; {escape(report['created'])}")
    missed = ", ".join(escape(name) for name in s["most_missed"])
    pairs = [[a, b, n] for a, b, n in s["false_positive_pairs"]]
    fitted = report.get("calibration") or {}
    thresholds = (f" Each label's threshold was tuned for F1 on {escape(fitted['fitted_on'])}: micro F1 "
                  f"{fitted['micro_f1_before']:.3f} at 0.5 -> {fitted['micro_f1_after']:.3f} there."
                  if fitted.get("method") == "thresholds" else "")
    words = _multilabel_words(s)
    rows = [[r["label"], f"{r['ap']:.3f}" if r["ap"] is not None else "-", f"{r['precision']:.3f}",
             f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"], r["predicted"], f"{r['threshold']:.2f}"]
            for r in sorted(s["per_label"], key=lambda r: (r["ap"] is None, r["ap"] or 0))]
    sections = [
        f'<header><h1>{escape(report["title"])}</h1><p class="meta">{meta}</p><div class="cards">{head}</div></header>',
        _section("diagnosis", "What it means", f"<p>{words}</p>"),
        _section("learning", "Learning curves", _img(figures.get("learning_curves"), "learning curves")
                 or "<p>No per-epoch history in this run.</p>"),
        _section("labels", "Per label (worst AP first)",
                 f"<p>A label is predicted when its probability reaches its threshold.{thresholds}</p>"
                 + _table(["label", "AP", "precision", "recall", "F1", "images", "predicted", "threshold"],
                          rows, "numbers")),
        _section("errors", "What it misses and what it adds",
                 f"<p>Lowest recall: {missed or 'none'}.</p>"
                 + (_table(["label present", "label wrongly added", "images"], pairs, "numbers") if pairs
                    else "<p>No false positives.</p>")),
        _gallery_multilabel(gallery),
    ]
    return _write_page(out, report, sections)


def _multilabel_words(s: dict[str, Any]) -> str:
    """The diagnosis in plain words for a multi-label evaluation."""
    said = [f"The model ranks the right labels first with a mean average precision of {s['mAP']:.2f}, and gets "
            f"the whole label set of {s['accuracy']:.0%} of the images exactly right."]
    if s["predicted_cardinality"] < 0.8 * s["cardinality"]:
        said.append("It predicts fewer labels than the images carry: it misses labels more than it invents them "
                    "(lower thresholds, or more photos of the most-missed labels).")
    elif s["predicted_cardinality"] > 1.25 * s["cardinality"]:
        said.append("It predicts more labels than the images carry: false positives dominate (raise thresholds, "
                    "or look at the pairs below: a label often added beside another may look alike or be "
                    "missing from the annotations).")
    weak = [r["label"] for r in s["per_label"] if r["ap"] is not None and r["ap"] < 0.5]
    if weak:
        said.append(f"Labels the model has not learned (AP below 0.5): {', '.join(weak[:8])}"
                    + (" and more" if len(weak) > 8 else "") + ". They need more, or clearer, photos.")
    return " ".join(escape(x) for x in said)


def _gallery_multilabel(gallery: list[GalleryItem]) -> str:
    if not gallery:
        return _section("mistakes", "Most confident false positives", "<p>No false positives.</p>")
    tiles = "".join(
        f'<figure><img alt="{escape(Path(g.path).name)}" src="data:image/jpeg;base64,{_jpeg(g.thumbnail)}">'
        f"<figcaption>added <b>{escape(g.predicted_label)}</b> {g.probability:.2f}<br>true: {escape(g.true_label)}"
        f'<br><span class="path">{escape(g.path)}</span></figcaption></figure>' for g in gallery)
    return _section("mistakes", "Most confident false positives",
                    "<p>Labels the model added with the most confidence. A true label missing from the "
                    f"annotation looks exactly like this: check them first.</p><div class=\"gallery\">{tiles}</div>")


def _figures(report: dict[str, Any], gallery: list[GalleryItem]) -> dict[str, bytes]:
    from ocula.evaluate import plots  # matplotlib costs ~0.4 s to import: only when a report is drawn

    summary = report["summary"]
    made = {
        "learning_curves": plots.learning_curves(report.get("history") or []),
        "confusion": plots.confusion_heatmap(summary["confusion"], summary["classes"]),
        "reliability": plots.reliability_diagram(summary["calibration"]),
        "coverage": plots.coverage_curve(summary["selective"]) if summary.get("selective") else None,
        "robustness": plots.robustness_bars(report["robustness"]) if report.get("robustness") else None,
        "gallery": plots.error_gallery(gallery),
    }
    return {name: png for name, png in made.items() if png is not None}


def _headline(report: dict[str, Any]) -> str:
    s = report["summary"]
    model = report["model"]
    cards = [("accuracy", f"{s['accuracy']:.3f}"), (f"top-{s['top_k']} accuracy", f"{s['top_k_accuracy']:.3f}"),
             ("balanced accuracy", f"{s['balanced_accuracy']:.3f}"), ("macro F1", f"{s['macro']['f1']:.3f}"),
             ("log loss", f"{s['log_loss']:.3f}"), ("calibration error", f"{s['calibration']['ece']:.3f}"),
             ("images", str(s["n"]))]
    if report.get("robustness"):
        cards.insert(1, ("under phone shift", f"{report['robustness']['mean_accuracy']:.3f}"))
    html = "".join(f'<div class="card"><div class="value">{escape(v)}</div><div class="label">{escape(k)}</div></div>'
                   for k, v in cards)
    meta = (f"run <code>{escape(report['run'])}</code> &middot; data <code>{escape(report['data'])}</code> "
            f"({escape(report['split'])}) &middot; {escape(model['arch'])}, mode {escape(model['mode'])}, "
            f"{model['image_size']} px &middot; {len(s['classes'])} classes"
            + (f" &middot; test-time augmentation: {len(report['tta'])} views ({escape(', '.join(report['tta']))})"
               if report.get("tta") else "") + f" &middot; {escape(report['created'])}")
    return f'<header><h1>{escape(report["title"])}</h1><p class="meta">{meta}</p><div class="cards">{html}</div></header>'


def _diagnosis(findings: list[dict[str, Any]]) -> str:
    items = []
    for f in findings:
        evidence = "".join(f"<li>{escape(e)}</li>" for e in f["evidence"])
        actions = "".join(f"<li>{escape(a)}</li>" for a in f["actions"])
        items.append(
            f'<div class="finding {f["level"]}"><span class="badge">{escape(LEVEL_LABEL[f["level"]])}</span>'
            f'<h3>{escape(f["title"])}</h3><p class="sub">Evidence</p><ul>{evidence}</ul>'
            + (f'<p class="sub">What to do next</p><ol>{actions}</ol>' if actions else "") + "</div>")
    return _section("diagnosis", "Diagnosis", "\n".join(items))


def _fitted(calibration: dict[str, Any] | None) -> str:
    """What training did to the probabilities: the temperature, where it was fitted, before and after."""
    if not calibration:
        return ""
    if calibration.get("method") != "temperature":
        why = calibration.get("reason", "--calibrate none")
        return f"<p>The probabilities are as trained: no temperature was fitted ({escape(str(why))}).</p>"
    return (f"<p>Every probability here is calibrated: the logits are divided by a temperature of "
            f"{calibration['temperature']:.3f}, fitted at the end of training on {escape(calibration['fitted_on'])} "
            f"(expected calibration error {calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after; "
            f"log loss {calibration['log_loss_before']:.3f} before, {calibration['log_loss_after']:.3f} after). "
            "Figures on the images it was fitted on flatter it; judge it on a split it did not see.</p>")


def _selective(result: dict[str, Any] | None, png: bytes | None) -> str:
    """Accuracy against coverage: the threshold below which to ask for another photo."""
    if not result:
        return ""
    rows = [[f"{row['threshold']:g}", f"{row['coverage']:.1%}", "" if row["accuracy"] is None else f"{row['accuracy']:.1%}"]
            for row in result["table"]]
    return _section("selective", "Answer only when confident",
                    f"<p>{escape(selective_sentence(result))}.</p><p>With <code>--min-confidence P</code>, "
                    "<code>serve</code>, <code>batch</code> and <code>predict</code> answer no label (\"rejected\") "
                    "for an image whose top probability is below P, or that is unlike every training photo (blank, "
                    "noise, far darker or blurrier). The curve shows the accuracy of the images "
                    "still answered against their share; <code>ocula evaluate --target-accuracy</code> picks "
                    "another target. A threshold chosen on these images flatters them a little: choose it on "
                    "validation, check it on test.</p>"
                    + _img(png, "accuracy against coverage")
                    + _table(["--min-confidence", "images answered", "accuracy of those"], rows, "numbers"))


# Measured against the published ImageNet-C suite on grocery (BENCHMARKS.md, three models).
TRUST_SHIFT = ("These corruptions model ordinary phone-photo defects. Checked against ImageNet-C (15 corruptions "
               "ocula did not write, 5 severities) on grocery, this estimate came within 2-5 points of the accuracy "
               "at ImageNet-C's mildest severity, and 22-28 points above its mean over all five: on badly "
               "degraded photos (heavy noise, snow, frost, strong blur) expect much less. Score a sample of your "
               "own customers' photos before trusting it further.")


def _robustness(shift: dict[str, Any] | None, png: bytes | None) -> str:
    if not shift:
        return ""
    by = shift["by_corruption"]
    severities = next(iter(by.values()))["severities"]
    definitions = shift.get("definitions", {})

    def models(name: str) -> str:
        row = definitions.get(name)
        return f"{row['models']}: {' / '.join(f'{v:g}' for v in row['severities'])}" if row else ""

    rows = [[name.replace("_", " "), *(f"{a:.3f}" for a in entry["accuracy"]), f"{entry['mean_drop']:.3f}",
             models(name)] for name, entry in sorted(by.items(), key=lambda kv: -kv[1]["mean_drop"])]
    body = (f"<p>{escape(shift['sentence'])}.</p><p>The same {shift.get('images', '')} images scored again under "
            "realistic phone-photo corruptions at three fixed severities (seeded: the same report every time). "
            "Expect accuracy on customers' photos between the clean figure and these."
            + (f" Each figure's standard error is at most {shift['standard_error'] * 100:.1f} points "
               "(a larger --shift-images narrows it)." if shift.get("standard_error") else "") + "</p>"
            + f"<p><b>How far to trust this estimate.</b> {TRUST_SHIFT}</p>"
            + _img(png, "accuracy under each corruption")
            + _table(["corruption", *(f"severity {k}" for k in severities), "mean drop",
                      "what it models: parameter at each severity"], rows))
    return _section("robustness", "Robustness under phone-photo shift", body)


def _confusion(summary: dict[str, Any], png: bytes) -> str:
    rows = [[p["true"], p["predicted"], p["count"], f"{p['share_of_true']:.0%}"] for p in summary["most_confused"]]
    pairs = _table(["true class", "predicted as", "images", "share of the true class"], rows) if rows else \
        "<p>No confusions.</p>"
    return _section("confusion", "Confusion matrix",
                    "<p>Rows are the true classes, normalised: each row shows where that class's images went.</p>"
                    + _img(png, "confusion matrix") + "<h3>Most confused pairs</h3>" + pairs)


def _per_class(summary: dict[str, Any]) -> str:
    ordered = sorted((r for r in summary["per_class"] if r["support"]), key=lambda r: (r["f1"], -r["support"]))
    rows = [[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]]
            for r in ordered]
    for name in ("macro", "weighted"):
        avg = summary[name]
        rows.append([f"{name} average", f"{avg['precision']:.3f}", f"{avg['recall']:.3f}", f"{avg['f1']:.3f}",
                     summary["n"]])
    return _section("classes", "Per class (weakest first)", _table(["class", "precision", "recall", "F1", "support"],
                                                                    rows, "numbers"))


def _jpeg(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, "JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode()


def _tile(g: GalleryItem) -> str:
    images = [(g.thumbnail, escape(Path(g.path).name))]
    if g.heatmaps is not None:
        images += [(g.heatmaps[0], f"where it saw {escape(g.predicted_label)}"),
                   (g.heatmaps[1], f"where it saw {escape(g.true_label)}")]
    pictures = "".join(f'<img alt="{alt}" title="{alt}" src="data:image/jpeg;base64,{_jpeg(image)}">'
                       for image, alt in images)
    looked = ("<br>heatmaps: where the model saw the predicted class, then the true one" if g.heatmaps is not None
              else "")
    return (f'<figure{" class=explained" if g.heatmaps is not None else ""}>{pictures}'
            f'<figcaption><b>{escape(g.predicted_label)}</b> {g.probability:.2f}<br>true: {escape(g.true_label)} '
            f'{g.true_probability:.2f}{looked}<br><span class="path">{escape(g.path)}</span></figcaption></figure>')


def _gallery(gallery: list[GalleryItem], summary: dict[str, Any]) -> str:
    if not gallery:
        return _section("mistakes", "Most confident mistakes", "<p>No mistakes.</p>")
    advice = (" Heat on the background rather than the product says the model learned the setting: "
              "crop tighter or augment. Heat on the right object for the wrong class says the label may be "
              "wrong or the two classes look alike." if any(g.heatmaps is not None for g in gallery) else "")
    return _section("mistakes", "Most confident mistakes",
                    f"<p>{summary['mistakes']} mistakes in all, {summary['confident_mistakes']} with probability "
                    f"&ge; 0.9. A confident mistake is often a wrong label or two classes that look alike.{advice}</p>"
                    f'<div class="gallery">{"".join(_tile(g) for g in gallery)}</div>')


def _skipped(skipped: list[dict[str, str]]) -> str:
    if not skipped:
        return ""
    return _section("skipped", f"Skipped files ({len(skipped)})",
                    _table(["file", "reason"], [[s["path"], s["reason"]] for s in skipped]))


def _footer(report: dict[str, Any]) -> str:
    t = report["throughput"]
    return (f'<footer>{t["images"]} images scored in {t["seconds"]} s ({t["images_per_second"]} images/s), '
            f'peak memory {t["peak_rss_mb"]} MB. Written by ocula; metrics.json and plots/ sit beside this file.'
            "</footer>")
