"""The real endpoint: `ocula serve` started on a free port, driven over HTTP as a client would."""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ocula
from ocula.inference import Predictor
from tests.conftest import run_cli, write_dataset

pytestmark = pytest.mark.slow
CLASSES = ("circle", "square", "stripes")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`ocula serve` in a subprocess; ``request`` returns (status, headers, body bytes)."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        exe = Path(sys.executable).with_name("ocula")
        self.process = subprocess.Popen([str(exe), "serve", *args, "--port", str(self.port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ocula serve exited: {self.process.stderr.read()}")
            try:
                if self.request("GET", "/ping")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("ocula serve did not answer /ping within 120 s")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def invoke(self, body: bytes, content_type: str = "image/jpeg", accept: str | None = None, query: str = "",
               headers_extra: dict | None = None):
        headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {}), **(headers_extra or {})}
        status, headers, data = self.request("POST", "/invocations" + query, body, headers)
        return status, headers, json.loads(data)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=92) if fmt == "JPEG" else image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    data = write_dataset(root / "data", classes=CLASSES, per_class=20)
    return ocula.train(data, model="small_cnn", pretrained="none", mode="full", epochs=2, out=str(root / "run"),
                       runs_root=str(root), quiet=True)


@pytest.fixture(scope="module")
def images(run):
    files = sorted((run.path.parent / "data").rglob("*.png"))
    return [Image.open(f).convert("RGB") for f in files[::7][:4]]


@pytest.fixture(scope="module")
def server(run):
    server = Server(str(run.path), "--max-batch", "8")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def expected(run, images):
    predictor = Predictor.from_run(run.path, backend="torch")  # the eager reference
    return lambda body: predictor.probabilities(predictor.crop(predictor.prepare(body))[None])[0]


def test_ping_and_execution_parameters(server):
    status, _, body = server.request("GET", "/ping")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = server.request("GET", "/execution-parameters")
    assert status == 200 and json.loads(body)["MaxPayloadInMB"] == 6


@pytest.mark.parametrize("content_type, fmt", [("image/jpeg", "JPEG"), ("image/png", "PNG"),
                                               ("application/x-image", "JPEG")])
def test_each_image_content_type_returns_the_models_probabilities(server, images, expected, content_type, fmt):
    body = encode(images[0], fmt)
    status, headers, probabilities = server.invoke(body, content_type)
    assert status == 200 and headers["content-type"] == "application/json"
    assert len(probabilities) == len(CLASSES) and abs(sum(probabilities) - 1) < 1e-4
    np.testing.assert_allclose(probabilities, expected(body), atol=1e-4)  # ONNX Runtime == PyTorch
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])


def test_verbose_accept_and_top_k(server, images, expected):
    body = encode(images[1])
    reference = expected(body)
    top = CLASSES[int(np.argmax(reference))]
    status, _, verbose = server.invoke(body, accept="application/json;verbose")
    assert status == 200 and set(verbose) == {"probabilities", "labels", "predicted_label"}
    assert verbose["labels"] == list(CLASSES) and verbose["predicted_label"] == top
    status, _, ranked = server.invoke(body, query="?top_k=2")
    assert status == 200 and [r["label"] for r in ranked][0] == top and len(ranked) == 2
    assert ranked[0]["probability"] >= ranked[1]["probability"]
    status, _, ranked = server.invoke(body, accept="application/json; verbose", query="?top_k=1")
    assert ranked["labels"] == [top] and ranked["predicted_label"] == top and len(ranked["probabilities"]) == 1


def test_json_instances_answer_one_entry_per_image_in_order(server, images, expected):
    bodies = [encode(image) for image in images[:3]]
    document = json.dumps({"instances": [{"b64": base64.b64encode(b).decode()} for b in bodies]}).encode()
    status, _, answers = server.invoke(document, "application/json", accept="application/json")
    assert status == 200 and len(answers) == 3
    for answer, body in zip(answers, bodies):
        np.testing.assert_allclose(answer, expected(body), atol=1e-4)


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A 400-megapixel PNG of 388 KB: over Pillow's own decompression-bomb limit, so even its
    header is refused by Pillow."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(b"".join(b"\x00" + bytes(width) for _ in range(height)), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def big_image() -> bytes:
    """A 50-megapixel JPEG that is small on the wire (flat colour): only the pixel guard stops it."""
    return encode(Image.new("RGB", (8000, 6250), (120, 80, 40)))


BAD_REQUESTS = {  # name -> (body, content type, query, accept, status, error code)
    "empty body": (b"", "image/jpeg", "", None, 400, "empty_body"),
    "not an image": (b"this is a text file, not a photo" * 20, "image/jpeg", "", None, 400, "invalid_image"),
    "truncated jpeg": ("truncated", "image/jpeg", "", None, 400, "invalid_image"),
    "wrong content type": ("jpeg", "text/plain", "", None, 415, "unsupported_media_type"),
    "missing content type": ("jpeg", "", "", None, 415, "unsupported_media_type"),
    "50 megapixels": ("big", "image/jpeg", "", None, 413, "image_too_large"),
    "400 megapixels (Pillow's bomb limit)": ("bomb", "image/png", "", None, 413, "image_too_large"),
    "json nested 200,000 levels": (b"[" * 200_000 + b"]" * 200_000, "application/json", "", None, 400,
                                   "invalid_json"),
    "nesting inside instances": (b'{"instances": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "application/json", "",
                                 None, 400, "invalid_json"),
    "body over 6 MB": (b"\xff" * (6 * 2**20 + 1), "image/jpeg", "", None, 413, "payload_too_large"),
    "invalid json": (b"{not json", "application/json", "", None, 400, "invalid_json"),
    "json without instances": (b'{"images": []}', "application/json", "", None, 400, "invalid_json"),
    "bad base64": (b'{"instances": [{"b64": "%%%"}]}', "application/json", "", None, 400, "invalid_base64"),
    "top_k zero": ("jpeg", "image/jpeg", "?top_k=0", None, 400, "invalid_parameter"),
    "top_k text": ("jpeg", "image/jpeg", "?top_k=many", None, 400, "invalid_parameter"),
    "unsupported accept": ("jpeg", "image/jpeg", "", "text/csv", 406, "not_acceptable"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_requests_get_4xx_with_one_json_error_shape(server, images, name):
    body, content_type, query, accept, status, code = BAD_REQUESTS[name]
    jpeg = encode(images[0])
    body = {"truncated": jpeg[: len(jpeg) // 2], "jpeg": jpeg, "big": big_image(), "bomb": bomb_png()}.get(body, body)
    headers = {"Content-Type": content_type} if content_type else {}
    got, response_headers, data = server.request("POST", "/invocations" + query, body,
                                                 {**headers, **({"Accept": accept} if accept else {})})
    error = json.loads(data)
    assert (got, error["error"]) == (status, code), error
    assert set(error) == {"error", "message"} and error["message"]
    assert response_headers["content-type"] == "application/json"


def test_an_image_over_pillows_bomb_limit_is_413_naming_the_limit(server):
    status, _, error = server.invoke(bomb_png(), "image/png")
    assert (status, error["error"]) == (413, "image_too_large")
    assert "400 megapixels" in error["message"] and "the limit is 40" in error["message"]


def metric(server, series: str) -> float:
    text = server.request("GET", "/metrics")[2].decode()
    found = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


def test_deeply_nested_json_is_a_counted_400(server):
    series = 'ocula_requests_total{path="/invocations",status="400"}'
    before = metric(server, series)
    for body in (b"[" * 200_000 + b"]" * 200_000, b'{"instances": [{"b64": ' + b"[" * 100 + b"]" * 100 + b"}]}"):
        status, _, error = server.invoke(body, "application/json")
        assert (status, error["error"]) == (400, "invalid_json") and "nested" in error["message"], error
    assert metric(server, series) == before + 2
    assert metric(server, 'ocula_requests_total{path="/invocations",status="500"}') == 0


def test_a_client_that_hangs_up_mid_upload_costs_one_log_line(run, images):
    server = Server(str(run.path), "--backend", "torch")
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                         b"Content-Length: 1000000\r\n\r\n" + b"\xff" * 50_000)
            time.sleep(0.5)
        time.sleep(1.0)
        assert server.invoke(encode(images[0]))[0] == 200  # still serving
    finally:
        server.stop()
    log = server.process.stderr.read()
    assert "Traceback" not in log, log
    lines = [line for line in log.splitlines() if "hung up" in line]
    assert len(lines) == 1 and "50000 bytes of 1000000" in lines[0], log


def test_unknown_path_and_method_use_the_same_error_shape(server):
    status, _, data = server.request("GET", "/predict")
    assert status == 404 and json.loads(data)["error"] == "not_found"
    status, _, data = server.request("GET", "/invocations")
    assert status == 405 and json.loads(data)["error"] == "method_not_allowed"


def test_still_serving_correctly_after_bad_requests_and_metrics_count_them(server, images, expected):
    for name in ("truncated jpeg", "not an image", "empty body"):
        body, content_type, *_ = BAD_REQUESTS[name]
        body = encode(images[0])[:500] if body == "truncated" else body
        assert server.request("POST", "/invocations", body, {"Content-Type": content_type})[0] == 400
    body = encode(images[2])
    status, _, probabilities = server.invoke(body)
    assert status == 200
    np.testing.assert_allclose(probabilities, expected(body), atol=1e-4)
    status, headers, text = server.request("GET", "/metrics")
    metrics = text.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    def value(series: str) -> float:
        return float(re.search("^" + re.escape(series) + r" (\S+)$", metrics, re.M)[1])

    assert value('ocula_requests_total{path="/invocations",status="400"}') >= 3
    assert value("ocula_request_latency_seconds_count") >= 1
    batches, images_done = value("ocula_batch_size_count"), value("ocula_images_total")
    assert 1 <= batches <= images_done


def test_openapi_docs_are_served_offline(server):
    status, _, page = server.request("GET", "/docs")
    assert status == 200 and b"/docs-static/swagger-ui-bundle.js" in page and b"cdn" not in page.lower()
    assert server.request("GET", "/docs-static/swagger-ui-bundle.js")[0] == 200
    spec = json.loads(server.request("GET", "/openapi.json")[2])
    content = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert {"image/jpeg", "image/png", "application/x-image", "application/json"} <= set(content)


@pytest.mark.parametrize("setup, message", [
    (lambda run, tmp: str(tmp / "nope"), "does not exist"),
    (lambda run, tmp: _broken_copy(run, tmp), "is not a PyTorch file"),
    (lambda run, tmp: _broken_copy(run, tmp, b""), "is empty (0 bytes)"),
])
def test_a_missing_or_broken_run_fails_at_start_in_one_line(run, tmp_path, setup, message):
    result = run_cli("serve", setup(run, tmp_path), "--port", str(free_port()), timeout=120)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def _broken_copy(run, tmp: Path, weights: bytes = b"not a checkpoint") -> str:
    import shutil

    target = tmp / "broken"
    shutil.copytree(run.path, target)
    (target / "model" / "weights.pt").write_bytes(weights)
    for name in ("model.onnx", "export.json"):
        (target / "model" / name).unlink(missing_ok=True)
    return str(target)


def test_captured_dark_blurred_traffic_is_flagged_by_ocula_monitor_with_the_accuracy_drop(run, tmp_path):
    from PIL import ImageFilter

    capture = tmp_path / "capture"
    files = sorted((run.path.parent / "data").rglob("*.png"))
    server = Server(str(run.path), "--capture-dir", str(capture), "--capture-percent", "100")
    truth, correct = {}, 0
    try:
        for i, path in enumerate(files):
            image = Image.open(path).convert("RGB").point(lambda v: int(v * 0.4)).filter(ImageFilter.GaussianBlur(2))
            request_id, label = f"req-{i}", path.parent.name
            status, headers, answer = server.invoke(encode(image), accept="application/json;verbose",
                                                    headers_extra={"X-Request-Id": request_id})
            assert status == 200 and headers["x-request-id"] == request_id
            truth[request_id] = label
            correct += answer["predicted_label"] == label
    finally:
        server.stop()  # a clean stop writes every pending capture line
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\n" + "".join(f"{k},{v}\n" for k, v in truth.items()))
    result = run_cli("monitor", str(run.path), str(capture), "--labels", str(labels), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "darker" in result.stdout and "blurrier" in result.stdout
    report = json.loads((capture / "monitor.json").read_text())
    assert report["captured"] == len(files)
    findings = {f["name"]: f for f in report["findings"]}
    assert findings["brightness"]["level"] == "drift" and findings["sharpness"]["level"] == "drift"
    assert findings["accuracy"]["live"] == pytest.approx(correct / len(files))
    assert "accuracy" in report["headline"]


def test_serving_on_onnx_runtime_never_imports_torch(run, server):
    # `server` has exported model.onnx; a fresh process loads it and scores without the training stack.
    code = ("import sys, numpy as np; from ocula.inference import Predictor; "
            f"r = Predictor.from_run({str(run.path)!r}, backend='onnx'); s = r.card.input_size; "
            "p = r.probabilities(np.zeros((2, 3, s, s), np.uint8)); "
            "print(r.backend, p.shape, sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["onnxruntime", "(2,", f"{len(CLASSES)})", "[]"]


def test_an_onnx_model_reading_a_file_outside_its_folder_is_refused(run, tmp_path):
    """ONNX external data is a path inside the model file: one that leaves the run folder must
    not be read (ONNX Runtime refuses it; this keeps that true for ocula's loader)."""
    import shutil

    import onnx
    from onnx import TensorProto, helper

    (tmp_path / "secret.bin").write_bytes(b"ABCDEFGH")
    target = tmp_path / "crafted"
    shutil.copytree(run.path, target)
    weights = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[8], data_location=TensorProto.EXTERNAL)
    weights.external_data.add(key="location", value="../../secret.bin")
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [8])], initializer=[weights])
    onnx.save(helper.make_model(graph), target / "model" / "model.onnx")
    (target / "model" / "export.json").write_text('{"onnx": {"checked": true}}')  # passes for a checked export
    result = run_cli("serve", str(target), "--backend", "onnx", "--port", str(free_port()), timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "cannot load" in result.stderr and "escapes model directory" in result.stderr
