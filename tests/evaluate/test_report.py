"""report.html from a report dict: self-contained, every section present, user strings escaped."""

from __future__ import annotations

import base64
import re

import numpy as np

from ocula.evaluate import GalleryItem, diagnose, render_report, shift_summary, summarize


def _report(classes: list[str]) -> tuple[dict, list[GalleryItem]]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(classes), 120)
    probs = rng.dirichlet(np.ones(len(classes)), 120)
    probs[np.arange(120), labels] += 1.0
    probs /= probs.sum(1, keepdims=True)
    summary = summarize(labels, probs, classes, top_k=2)
    epochs = [{"epoch": e, "phase": "head" if e < 3 else "backbone", "train:accuracy": 0.5 + 0.1 * e,
               "validation:accuracy": 0.5 + 0.08 * e, "train:loss": 1 / e, "validation:loss": 1.1 / e}
              for e in range(1, 6)]
    results = [{"corruption": c, "severity": s, "accuracy": summary["accuracy"] - 0.05 * s * (i + 1)}
               for i, c in enumerate(["dark", "motion_blur"]) for s in (1, 2, 3)]
    report = {
        "title": "evaluation of <run>", "run": "runs/x", "data": "photos/<b>", "split": "test",
        "created": "2026-11-25T00:00:00+00:00", "model": {"arch": "small_cnn", "mode": "full", "image_size": 32},
        "throughput": {"images": 120, "seconds": 1.0, "images_per_second": 120.0, "peak_rss_mb": 300},
        "skipped": [{"path": "photos/<script>alert(1)</script>.jpg", "reason": "truncated"}],
        "summary": summary, "findings": [f.to_dict() for f in diagnose(epochs, summary)], "history": epochs,
        "robustness": {**shift_summary(summary["accuracy"], results), "images": 120},
    }
    gallery = [GalleryItem(np.zeros((40, 40, 3), np.uint8), "photos/a&b.jpg", classes[0], classes[1], 0.97, 0.01)]
    return report, gallery


def test_report_has_every_section_and_embeds_its_images(tmp_path):
    report, gallery = _report(["cat", "dog", "<img src=x onerror=alert(1)>"])
    html = render_report(tmp_path, report, gallery).read_text()
    for anchor in ("diagnosis", "robustness", "learning", "confusion", "classes", "calibration", "selective",
                   "mistakes", "skipped"):
        assert f'id="{anchor}"' in html
    sources = re.findall(r'src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)  # nothing to fetch: opens offline
    for source in sources:
        payload = base64.b64decode(source.split(",", 1)[1])
        assert payload[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion.png", "coverage.png", "gallery.png", "learning_curves.png", "reliability.png", "robustness.png"]
    # Names from the user's files are text, never markup.
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "photos/a&amp;b.jpg" in html
    assert "motion blur" in html and f"{report['robustness']['mean_accuracy']:.3f}" in html


def test_report_without_history_or_shift_still_renders(tmp_path):
    report, _ = _report(["a", "b"])
    report.update(history=[], robustness=None, skipped=[])
    html = render_report(tmp_path, report, []).read_text()
    assert 'id="robustness"' not in html and "No mistakes." in html and "No per-epoch history" in html
