"""The HTTP endpoint: SageMaker's contract (``GET /ping``, ``POST /invocations`` on :8080).

The app knows about requests and responses, not models: it decodes images with the predictor's
``prepare`` (the one inference path, ``ocula.inference``) on a thread pool (never on the event loop), hands each cropped image to the
``Batcher``, and formats the rows it gets back. Every error is ``{"error": code, "message": ...}``
with a 4xx status; the server keeps serving after any bad request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ocula.errors import ImageError, first_line
from ocula.serve.batcher import Batcher
from ocula.serve.capture import Capture
from ocula.inference import Gate, Predictor, Prepared, cpu_count
from ocula.inference.predictor import above

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time payload limit
MAX_INSTANCES = 64
IMAGE_TYPES = ("application/x-image", "image/jpeg", "image/png")
JSON_TYPE = "application/json"
MAX_JSON_DEPTH = 32  # no request needs more; Python's parser recurses once per level
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
log = logging.getLogger("uvicorn.error")  # uvicorn's own console format and level
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Settings:
    max_batch: int = 16
    max_delay_ms: float = 5.0
    max_body_bytes: int = MAX_BODY_BYTES
    decode_threads: int = 0  # 0: one per core
    capture: Capture | None = None
    min_confidence: float | None = None  # reject below this top probability unless a request says otherwise
    explainer: Any = None  # an ocula.inference.explain.Explainer: ?explain=true answers with heatmaps


class ServeError(Exception):
    """A request the server refuses: HTTP status, a stable code, and a sentence for people."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """The one error body: ``{"error": code, "message": ...}`` (plus e.g. the ``column`` at fault)."""
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


class Metrics:
    """Prometheus metrics of one server process (each worker has its own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ocula_requests", "HTTP requests by path and status", ("path", "status"),
                                registry=self.registry)
        self.latency = Histogram("ocula_request_latency_seconds", "POST /invocations latency",
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.images = Counter("ocula_images", "Images classified", registry=self.registry)
        self.rejected = Counter("ocula_rejected_images", "Images answered with no label (top probability below "
                                "the confidence threshold)", registry=self.registry)
        self.batch_size = Histogram("ocula_batch_size", "Images per model call", buckets=_BATCH_BUCKETS,
                                    registry=self.registry)
        self.inference = Histogram("ocula_inference_seconds", "Seconds per model call",
                                   buckets=_LATENCY_BUCKETS, registry=self.registry)

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)
        self.images.inc(size)


def base_app(*, describe: str, description: str, settings: Settings, metrics: Metrics, lifespan: Any) -> FastAPI:
    """What every ocula endpoint has: /ping, /execution-parameters, /metrics, offline /docs, and
    one error shape ``{"error", "message"}`` for every refusal; the caller adds /invocations."""
    app = FastAPI(title="ocula endpoint", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=description)
    app.state.metrics = metrics
    _add_docs(app)

    @app.exception_handler(ServeError)
    async def _refused(_: Request, error: ServeError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, **error.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(400, "invalid_parameter", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail))

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Response:
        try:
            response = await call_next(request)
        except Exception as error:  # noqa: BLE001 - a bug must still answer in the one error shape, and count
            log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(error).__name__,
                      first_line(error))
            response = error_response(500, "internal_error", "the server failed on this request; it keeps serving")
        route = request.scope.get("route")
        metrics.requests.labels(getattr(route, "path", "other"), str(response.status_code)).inc()
        return response

    @app.get("/ping", summary="Health check: 200 once the model is loaded")
    async def ping() -> dict[str, str]:
        return {"status": "ok", "model": describe}

    @app.get("/execution-parameters", summary="Batch transform settings (SageMaker)")
    async def execution_parameters() -> dict[str, Any]:
        return {"MaxConcurrentTransforms": max(1, cpu_count()), "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": settings.max_body_bytes // (1024 * 1024)}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def create_app(predictor: Predictor, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    batcher = Batcher(predictor.probabilities, max_batch=settings.max_batch, max_delay_ms=settings.max_delay_ms,
                      on_batch=metrics.on_batch)
    decoder = ThreadPoolExecutor(settings.decode_threads or cpu_count(), thread_name_prefix="ocula-decode")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()
        decoder.shutdown(wait=True)  # pending captures are written before the file closes
        if settings.capture is not None:
            settings.capture.close()

    app = base_app(describe=predictor.describe(), settings=settings, metrics=metrics, lifespan=lifespan,
                   description=f"Image classification with {predictor.describe()}. SageMaker's contract: "
                               "`GET /ping`, `POST /invocations`.")
    app.state.predictor = predictor

    @app.post("/invocations", summary="Classify one image, or several as JSON", openapi_extra=_INVOCATIONS_DOC,
              response_class=JSONResponse)
    async def invocations(request: Request, top_k: int | None = Query(None, ge=1, description=(
            "Return only the k most probable classes, with their labels")), min_confidence: float | None = Query(
            None, ge=0, le=1, description="Reject an image whose top probability is below this (default: the "
                                          "server's --min-confidence)"), explain: bool = Query(
            False, description="Add a Grad-CAM heatmap of the top class over each image (base64 PNG) to a verbose "
                               "answer; the server must run with --explain")) -> Response:
        began = time.perf_counter()
        gate = predictor.gate(settings.min_confidence if min_confidence is None else min_confidence)
        verbose = accept_json(request.headers.get("accept")) or explain
        if explain and settings.explainer is None:
            raise ServeError(400, "explain_disabled", "this server was started without --explain; restart it with "
                                                      "`ocula serve RUN --explain` to ask for heatmaps")
        request_id = request.headers.get("x-request-id", "")
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        body = await read_body(request, settings.max_body_bytes)
        loop = asyncio.get_running_loop()
        kind = _content_type(request.headers.get("content-type"))
        images = [body] if kind != JSON_TYPE else await loop.run_in_executor(decoder, _instances, body)
        names = ["the image"] if kind != JSON_TYPE else [f"instances[{i}]" for i in range(len(images))]
        batcher.expect(len(images))  # so a batch waits for them while they decode
        try:
            prepared = await asyncio.gather(*(loop.run_in_executor(decoder, _prepare, predictor, data, name)
                                              for data, name in zip(images, names)))
        except BaseException:
            batcher.expect(-len(images))
            raise
        rows = await asyncio.gather(*(batcher.submit(predictor.crop(p)) for p in prepared))
        if settings.capture is not None and settings.capture.sampled():
            loop.run_in_executor(decoder, _capture, settings.capture, request_id, prepared, rows, predictor.labels)
        reasons = None if gate is None else await loop.run_in_executor(decoder, _reasons, gate, rows, prepared)
        answers = [_format(row, predictor.labels, verbose, top_k, None if reasons is None else reasons[i] or "")
                   for i, row in enumerate(rows)]
        if verbose and predictor.card.multi_label:  # independent probabilities: every label above its threshold
            thresholds = predictor.card.decision_thresholds()
            for answer, row in zip(answers, rows):
                answer["predicted_labels"] = [predictor.labels[j] for j in above(row, thresholds)]
        if explain:
            pictures = await loop.run_in_executor(decoder, _explain, settings.explainer, predictor, prepared, rows)
            for answer, picture in zip(answers, pictures):
                answer["explanation"] = picture
        content = answers[0] if kind != JSON_TYPE else answers
        headers = {"X-Request-Id": request_id}
        if reasons is not None:  # the plain answer is SageMaker's bare list: the header carries the verdict
            headers["X-Rejected"] = ",".join("true" if reason else "false" for reason in reasons)
            metrics.rejected.inc(sum(reason is not None for reason in reasons))
        metrics.latency.observe(time.perf_counter() - began)
        return Response(json.dumps(content), media_type=JSON_TYPE, headers=headers)

    return app


def accept_json(header: str | None) -> bool:
    """True for ``application/json;verbose``; False for plain JSON; 406 for anything else."""
    offered = [part.replace(" ", "").lower() for part in (header or "*/*").split(",")]
    if any(part.startswith(JSON_TYPE) and "verbose" in part for part in offered):
        return True
    if any(part.split(";")[0] in (JSON_TYPE, "*/*", "application/*", "") for part in offered):
        return False
    raise ServeError(406, "not_acceptable",
                     f"cannot answer with {header!r}; accept application/json or application/json;verbose")


def _content_type(header: str | None) -> str:
    kind = (header or "").split(";")[0].strip().lower()
    if kind in IMAGE_TYPES or kind == JSON_TYPE:
        return kind
    raise ServeError(415, "unsupported_media_type",
                     f"content type {kind or 'missing'!r} is not supported; send one of "
                     f"{', '.join(IMAGE_TYPES)}, or {JSON_TYPE} with {{\"instances\": [{{\"b64\": ...}}]}}")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ServeError(413, "payload_too_large", f"the body is over the {limit / 2**20:g} MB limit")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:  # nobody is left to answer: one log line, no traceback
        declared_text = f" of {declared}" if declared else ""
        log.warning("client %s hung up during the upload (%d bytes%s received)",
                    request.client.host if request.client else "?", size, declared_text)
        raise ServeError(499, "client_disconnected", "the client closed the connection during the upload") from None
    if size == 0:
        raise ServeError(400, "empty_body", "the request body is empty; send an image")
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The request body as JSON, or a 400: malformed, nested deeper than MAX_JSON_DEPTH (deeper
    structures exhaust the parser's or pandas' stack), or an integer too long to convert."""
    too_deep = ServeError(400, "invalid_json", f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        document = json.loads(body)
    except RecursionError:
        raise too_deep from None
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: JSONDecodeError, the int digit limit
        raise ServeError(400, "invalid_json", f"the body is not valid JSON: {first_line(error)}") from None
    brackets = np.frombuffer(body.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    steps = np.where((brackets == 91) | (brackets == 123), np.int8(1), np.int8(-1))  # "[" or "{" opens
    if brackets.size and int(np.cumsum(steps, dtype=np.int32).max()) > MAX_JSON_DEPTH:
        if _depth(document) > MAX_JSON_DEPTH:  # the count above includes brackets inside strings
            raise too_deep
    return document


def _depth(document: Any) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _instances(body: bytes) -> list[bytes]:
    """``{"instances": [{"b64": "..."}, ...]}`` -> encoded images."""
    document = parse_json(body)
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise ServeError(400, "invalid_json", 'expected {"instances": [{"b64": "<base64 image>"}, ...]}')
    if len(instances) > MAX_INSTANCES:
        raise ServeError(413, "too_many_instances", f"{len(instances)} instances; at most {MAX_INSTANCES} per request")
    images = []
    for i, instance in enumerate(instances):
        encoded = instance.get("b64") if isinstance(instance, dict) else None
        if not isinstance(encoded, str):
            raise ServeError(400, "invalid_json", f'instances[{i}] has no "b64" string')
        try:
            images.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise ServeError(400, "invalid_base64", f"instances[{i}].b64 is not valid base64") from None
    return images


def _prepare(predictor: Predictor, data: bytes, name: str) -> Prepared:
    try:
        return predictor.prepare(data, name)
    except ImageError as error:
        status = 413 if error.reason == "too_large" else 400
        message = {"zero_byte": "is empty", "not_image": "is not an image (JPEG or PNG expected)",
                   "truncated": "is truncated: the image data ends early",
                   "too_large": f"is too large ({error.detail})"}.get(error.reason, f"cannot be decoded ({error.detail})")
        raise ServeError(status, "image_too_large" if status == 413 else "invalid_image",
                         f"{error.path} {message}") from None


def _capture(capture: Capture, request_id: str, prepared: list[Prepared], rows: list[np.ndarray],
             labels: list[str]) -> None:
    for index, (item, row) in enumerate(zip(prepared, rows)):
        capture.record(request_id, index, item.array, item.size, row, labels)


_EXPLAIN_LOCK = threading.Lock()  # one explanation at a time: it runs the PyTorch model beside the engine


def _explain(explainer: Any, predictor: Predictor, prepared: list[Prepared], rows: list[np.ndarray]) -> list[dict]:
    from ocula.inference.explain import overlay, png

    crops = np.stack([predictor.crop(p) for p in prepared])
    top = [int(np.argmax(row)) for row in rows]
    with _EXPLAIN_LOCK:
        heat = explainer.heatmaps(crops, top)
    return [{"label": predictor.labels[k], "method": "grad-cam",
             "png_b64": base64.b64encode(png(overlay(crop, h))).decode()} for crop, h, k in zip(crops, heat, top)]


def _reasons(gate: Gate, rows: list[np.ndarray], prepared: list[Prepared]) -> list[str | None]:
    return [gate.why(row, image) for row, image in zip(rows, prepared)]


def _format(row: np.ndarray, labels: list[str], verbose: bool, top_k: int | None, rejection: str | None) -> Any:
    """SageMaker's answer for one image. ``rejection`` is None when no reject option applies, ""
    for an image answered, else the reason it was not: verbose answers then carry ``"rejected"``,
    and a rejected one has ``"predicted_label": null`` and the ``"reason"``."""
    order = np.arange(len(row)) if top_k is None else np.argsort(-row, kind="stable")[:top_k]
    if not verbose:
        return row.tolist() if top_k is None else [{"label": labels[i], "probability": float(row[i])} for i in order]
    answer = {"probabilities": [float(row[i]) for i in order], "labels": [labels[i] for i in order],
              "predicted_label": None if rejection else labels[int(np.argmax(row))]}
    if rejection is not None:
        answer["rejected"] = bool(rejection)
        if rejection:
            answer["reason"] = rejection
    return answer


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the swagger-ui-bundle package: no CDN, so it works offline."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-static", StaticFiles(directory=str(swagger_ui_path)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="ocula endpoint",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon-32x32.png")


_INVOCATIONS_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {
        **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES},
        JSON_TYPE: {"schema": {"type": "object", "required": ["instances"], "properties": {"instances": {
            "type": "array", "maxItems": MAX_INSTANCES,
            "items": {"type": "object", "required": ["b64"], "properties": {"b64": {"type": "string"}}}}}}},
    }},
    "responses": {
        "200": {"description": "`Accept: application/json`: the class probabilities (a list per image); "
                               "`application/json;verbose`: {probabilities, labels, predicted_label}; with "
                               "`top_k`: the k most probable classes. A JSON request gets one answer per instance. "
                               "With a confidence threshold (`min_confidence` or the server's --min-confidence) "
                               "the verbose answer adds `rejected` (and a rejected image's predicted_label is "
                               "null) and the `X-Rejected` header lists true/false per image. `?explain=true` "
                               "(server started with --explain) answers verbose, each answer with an "
                               "`explanation`: {label, method, png_b64} of the top class."},
        "400": {"description": "empty body, not an image, truncated image, invalid JSON or base64, "
                               "?explain=true on a server started without --explain"},
        "406": {"description": "an Accept type other than application/json[;verbose]"},
        "413": {"description": "body over the limit (6 MB), more than 64 instances, or an image over the pixel limit"},
        "415": {"description": "an unsupported Content-Type"},
    },
}
