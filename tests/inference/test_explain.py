"""Grad-CAM explanations: the heatmap sits on the object that decides the class, `ocula predict
--explain` writes one overlay per image, and a run without PyTorch weights is a one-line error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import ocula
from ocula.errors import ImageError
from ocula.inference.explain import Explainer, Explanation
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
SIZE = 128


def _photo(colour, corner: int, rng) -> Image.Image:
    """Grey noisy background, one coloured square in ``corner`` (0-3: TL, TR, BL, BR)."""
    pixels = rng.integers(90, 150, (SIZE, SIZE, 3)).astype(np.uint8)
    top, left = (corner // 2) * SIZE // 2, (corner % 2) * SIZE // 2
    pixels[top + 12:top + 52, left + 12:left + 52] = colour
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(0)
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / "data" / name).mkdir(parents=True)
        for i in range(16):
            _photo(colour, i % 4, rng).save(root / "data" / name / f"{name}_{i:02d}.png")
    return ocula.train(str(root / "data"), mode="head", epochs=4, val_fraction=0.25, out=str(root / "run"),
                       runs_root=str(root), quiet=True)


def test_the_heatmap_sits_on_the_object(run, tmp_path):
    rng = np.random.default_rng(7)
    paths = []
    for corner in range(4):
        path = tmp_path / f"red_{corner}.png"
        _photo((220, 30, 30), corner, rng).save(path)
        paths.append(str(path))
    explainer = Explainer.from_run(run.path)
    crops = explainer.predictor.images(paths)
    heat = explainer.heatmaps(crops, [explainer.predictor.labels.index("red")] * 4)
    assert heat.shape == (4, *crops.shape[-2:]) and heat.min() >= 0 and np.allclose(heat.max((1, 2)), 1)
    half = crops.shape[-1] // 2
    for corner, h in enumerate(heat):
        quadrants = [h[:half, :half], h[:half, half:], h[half:, :half], h[half:, half:]]
        share = quadrants[corner].sum() / h.sum()
        assert share > 0.4, (corner, share)  # a map that ignored the object would put 0.25 there


def test_predict_explain_writes_one_overlay_per_image(run, tmp_path):
    rng = np.random.default_rng(3)
    good = tmp_path / "photo.png"
    _photo((30, 30, 220), 1, rng).save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "heatmaps"
    result = run_cli("predict", str(run.path), str(good), str(bad), "--explain", "--explain-dir", str(out))
    assert result.returncode == 0, result.stderr
    written = sorted(out.glob("*.png"))
    assert [p.name for p in written] == ["001-photo.png"]
    with Image.open(written[0]) as image:
        assert image.size == (run.card.input_size, run.card.input_size)
    assert "heatmap of blue" in result.stdout and "broken.jpg" in result.stderr
    found = Explainer.from_run(run.path).explain_files([str(good), str(bad)])
    assert isinstance(found[0][0], Explanation) and len(found[0]) == 1 and isinstance(found[1], ImageError)


def test_explain_without_weights_is_one_line(run, tmp_path):
    copy = tmp_path / "exported-only"
    shutil.copytree(run.path, copy)
    (copy / "model" / "weights.pt").unlink()
    result = run_cli("predict", str(copy), str(next(run.path.parent.glob("data/red/*.png"))), "--explain")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "PyTorch weights" in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_served_heatmaps_only_when_the_server_allows_them(run, tmp_path):
    import base64
    import io

    from tests.serve.test_server import Server

    rng = np.random.default_rng(5)
    buffer = io.BytesIO()
    _photo((220, 30, 30), 2, rng).save(buffer, format="PNG")
    photo = buffer.getvalue()
    body = json.dumps({"instances": [{"b64": base64.b64encode(photo).decode()}] * 2}).encode()
    server = Server(str(run.path), "--explain")
    try:
        status, _, answer = server.invoke(body, "application/json", query="?explain=true")
        assert status == 200 and len(answer) == 2
        for item in answer:
            assert item["predicted_label"] == "red" and item["explanation"]["label"] == "red"
            with Image.open(io.BytesIO(base64.b64decode(item["explanation"]["png_b64"]))) as picture:
                assert picture.size == (run.card.input_size, run.card.input_size)
        status, _, plain = server.invoke(photo, "image/png")  # without ?explain: SageMaker's bare list
        assert status == 200 and isinstance(plain, list) and len(plain) == 2
    finally:
        server.stop()
    server = Server(str(run.path))
    try:
        status, _, answer = server.invoke(photo, "image/png", query="?explain=true")
        assert status == 400 and answer["error"] == "explain_disabled" and "--explain" in answer["message"]
    finally:
        server.stop()
