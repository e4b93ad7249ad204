"""``ocula batch``: a real run scores folders and manifests into JSON Lines, skips bad files, resumes."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ocula
from ocula.data.imageio import read_bytes
from ocula.errors import UsageError
from ocula.inference import Predictor
from ocula.serve.batch import score
from tests.conftest import run_cli, write_dataset

pytestmark = pytest.mark.slow

KEYS = {"source", "label", "probability", "prediction"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    return ocula.train(write_dataset(root / "data", per_class=8), model="small_cnn", pretrained="none", mode="full",
                       epochs=2, out=str(root / "run"), runs_root=str(root), quiet=True)


@pytest.fixture(scope="module")
def data(run) -> Path:
    return run.path.parent / "data"  # 3 class folders x 8 PNGs


def _images(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*.png"))


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def _with_bad_files(data: Path, folder: Path) -> Path:
    shutil.copytree(data, folder)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a picture, just text with a .jpg name\n")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (folder / "square" / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return folder


def test_folder_scores_every_good_image_once_and_lists_the_bad_ones(run, data, tmp_path):
    folder = _with_bad_files(data, tmp_path / "mixed")
    out = tmp_path / "preds.jsonl"
    result = run_cli("batch", str(run.path), str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out)
    records = _records(out)
    labels = Predictor.from_run(run.path, backend="torch").labels
    # A folder of class folders is still a folder: every image below it, sorted, no labels.
    assert [r["source"] for r in records] == _images(folder)
    for record in records:
        assert set(record) == KEYS
        assert record["label"] == labels[record["prediction"]] and 0 < record["probability"] <= 1
    bad = {str(folder / "empty.jpg"): "zero_byte", str(folder / "notes.jpg"): "not_image",
           str(folder / "square" / "cut.jpg"): "truncated"}
    errors = [json.loads(line) for line in (tmp_path / "preds.errors.jsonl").read_text().splitlines()]
    assert {e["source"]: e["reason"] for e in errors} == bad and all("detail" in e for e in errors)
    assert "bad files: 3" in result.stdout and "written: 24" in result.stdout
    for path, reason in bad.items():
        assert f"  {path}: {reason}" in result.stdout
    assert "images/s" in result.stdout and "peak memory" in result.stdout
    # Bad files are tried again on a re-run; the good ones are not scored twice.
    again = run_cli("batch", str(run.path), str(folder), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "already done: 24" in again.stdout and "written: 0" in again.stdout and "bad files: 3" in again.stdout
    assert len(_records(out)) == 24


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_predictions_equal_the_predictor(run, data, tmp_path, backend):
    out = tmp_path / "preds.jsonl"
    result = score(run.path, data, out, backend=backend, batch_size=5, top_k=3, progress=False)
    records = _records(out)
    assert result.written == len(records) == 24 and result.skipped_existing == 0 and result.bad == []
    assert result.images_per_second > 0 and result.peak_rss_mb > 0 and result.out == out
    predictor = Predictor.from_run(run.path, backend="torch")  # the eager reference
    labels = predictor.labels
    expected = predictor.probabilities(np.stack([predictor.crop(predictor.prepare(read_bytes(r["source"])))
                                                 for r in records]))
    for record, row in zip(records, expected):
        assert set(record) == KEYS | {"top_k"}
        assert abs(record["probability"] - row.max()) <= 1e-4 and abs(row[record["prediction"]] - row.max()) <= 1e-4
        assert len(record["top_k"]) == 3 and record["top_k"][0] == [record["label"], record["probability"]]
        for label, probability in record["top_k"]:
            assert abs(probability - row[labels.index(label)]) <= 1e-4


def test_manifests_carry_the_true_label(run, data, tmp_path):
    images = _images(data)
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},{Path(p).parent.name}\n" for p in images))
    out = tmp_path / "preds.jsonl"
    result = score(run.path, manifest, out, progress=False)
    records = _records(out)
    assert result.written == 24 and "manifest" in result.input
    assert [(r["source"], r["true_label"]) for r in records] == [(p, Path(p).parent.name) for p in images]
    assert all(set(r) == KEYS | {"true_label"} for r in records)

    # The grocery layout: test.txt beside train.txt and classes.csv is that split alone, labelled.
    root = tmp_path / "id_manifest"
    root.mkdir()
    names = sorted({Path(p).parent.name for p in images})
    (root / "classes.csv").write_text("Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int)\n"
                                      + "".join(f"{name},{i},all,0\n" for i, name in enumerate(names)))
    rows = [f"{p}, {names.index(Path(p).parent.name)}, 0\n" for p in images]
    (root / "train.txt").write_text("".join(rows[::2]))
    (root / "test.txt").write_text("".join(rows[1::2]))
    split_out = tmp_path / "test-preds.jsonl"
    result = run_cli("batch", str(run.path), str(root / "test.txt"), "--out", str(split_out))
    assert result.returncode == 0, result.stderr
    assert [(r["source"], r["true_label"]) for r in _records(split_out)] == [
        (p, Path(p).parent.name) for p in images[1::2]]


def test_a_rerun_after_a_torn_write_continues_where_it_stopped(run, data, tmp_path):
    out = tmp_path / "preds.jsonl"
    score(run.path, data, out, batch_size=4, progress=False)
    full = out.read_text().splitlines(keepends=True)
    n = 7
    out.write_text("".join(full[:n]) + full[n][: len(full[n]) // 2])  # killed halfway through a line
    result = run_cli("batch", str(run.path), str(data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"already done: {n} " in result.stdout and f"written: {len(full) - n}" in result.stdout
    records = _records(out)
    assert sorted(r["source"] for r in records) == _images(data)  # every source exactly once
    before = {r["source"]: r for r in map(json.loads, full)}
    for record in records:
        assert record["prediction"] == before[record["source"]]["prediction"]
        assert abs(record["probability"] - before[record["source"]]["probability"]) <= 1e-4
    # Damage before the last line is not an interruption: refuse rather than guess.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + "garbage\n" + "".join(lines[3:]))
    with pytest.raises(UsageError, match="is not a line"):
        score(run.path, data, out, progress=False)


def test_an_interrupted_run_resumes_and_scores_every_source_once(run, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    y, x = np.mgrid[0:900, 0:1200]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(folder / "photo_0000.png")  # slow enough to decode to be interrupted
    for i in range(1, 400):
        os.link(folder / "photo_0000.png", folder / f"photo_{i:04d}.png")
    sources = _images(folder)
    out = tmp_path / "preds.jsonl"
    ocula_exe = Path(sys.executable).with_name("ocula")
    proc = subprocess.Popen([str(ocula_exe), "batch", str(run.path), str(folder), "--out", str(out),
                             "--batch-size", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stderr and "Traceback" not in stderr
    done = len(_records(out))
    assert 0 < done < len(sources)
    result = run_cli("batch", str(run.path), str(folder), "--out", str(out), "--batch-size", "16")
    assert result.returncode == 0, result.stderr
    assert f"already done: {done} " in result.stdout
    assert sorted(r["source"] for r in _records(out)) == sources


def test_one_image_file_is_scored(run, data, tmp_path):
    image = _images(data)[0]
    result = score(run.path, image, tmp_path / "one.jsonl", progress=False)
    assert result.input == "one image" and [r["source"] for r in _records(result.out)] == [image]


@pytest.mark.parametrize("args, message", [
    (["batch", "{run}", "{tmp}/nope", "--out", "{tmp}/p.jsonl"], "does not exist"),
    (["batch", "{tmp}/no-run", "{data}", "--out", "{tmp}/p.jsonl"], "does not exist"),
    (["batch", "{run}", "{data}", "--out", "{tmp}/p.jsonl", "--batch-size", "0"], "batch size must be at least 1"),
])
def test_bad_arguments_are_one_line_and_exit_2(run, data, tmp_path, args, message):
    result = run_cli(*[a.format(run=run.path, data=data, tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_out_is_required(run, data):
    result = run_cli("batch", str(run.path), str(data))
    assert result.returncode == 2 and "--out" in result.stderr and "Traceback" not in result.stderr


def test_a_full_disk_is_one_line_and_keeps_every_line_written_whole(run, data, tmp_path):
    """The output on a real 8 KB file system (tmpfs in a private mount namespace): the disk fills
    mid-run; the error is one line and the file holds only complete lines, so a re-run continues."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare with user and mount namespaces to make a small file system")
    many = tmp_path / "many"
    for copy in range(4):  # 96 images: ~14 KB of lines
        shutil.copytree(data, many / str(copy))
    mount = tmp_path / "small"
    mount.mkdir()
    exe = Path(sys.executable).with_name("ocula")
    script = (f'mount -t tmpfs -o size=8k tmpfs "{mount}" && "{exe}" batch "{run.path}" "{many}" '
              f'--out "{mount}/preds.jsonl" --batch-size 8 --backend torch --quiet; code=$?; '
              f'cp "{mount}/preds.jsonl" "{tmp_path}/kept.jsonl"; exit $code')
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "run the same command again" in lines[0]
    from ocula.serve.batch import read_done

    kept = tmp_path / "kept.jsonl"
    done = read_done(kept)  # what a re-run would skip: a torn last line is cut off
    assert 0 < len(done) < 96
    lines = kept.read_text().splitlines()
    assert len(lines) == len(done) and {json.loads(line)["source"] for line in lines} == done
