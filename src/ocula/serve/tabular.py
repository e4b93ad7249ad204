"""The endpoint for a tabular run (``ocula automl``): the same contract and error shape as the
image endpoint, with rows in and Autopilot's keys out.

``POST /invocations`` takes ``text/csv`` (rows in the training table's column order without
the target, or with a header row naming the columns) or ``application/json`` (one record, a
list of records, or ``{"instances": [...]}``). Each row gets ``{"predicted_label",
"probability", "probabilities", "labels"}`` (classification) or ``{"prediction"}``
(regression); several rows come back as ``{"predictions": [...]}``. A row that does not fit
the schema is a 400 that names the column.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from ocula.errors import DataError
from ocula.serve.app import JSON_TYPE, Metrics, ServeError, Settings, accept_json, base_app, parse_json, read_body
from ocula.inference import cpu_count
from ocula.tabular.model import SchemaError, TabularModel

CSV_TYPE = "text/csv"
MAX_ROWS = 10_000


def create_tabular_app(model: TabularModel, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    pool = ThreadPoolExecutor(max(1, cpu_count()), thread_name_prefix="ocula-tabular")
    describe = f"{model.card['best']} ({model.kind}, target {model.card['problem']['target']!r})"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown(wait=True)

    columns = ", ".join(model.schema)
    app = base_app(describe=describe, settings=settings, metrics=metrics, lifespan=lifespan,
                   description=f"Tabular {model.kind} model {describe}. Send `text/csv` rows or JSON records "
                               f"with the columns: {columns}.")
    app.state.model = model

    @app.post("/invocations", summary="Predict rows given as CSV or JSON records", openapi_extra=_DOC)
    async def invocations(request: Request) -> Response:
        began = time.perf_counter()
        accept_json(request.headers.get("accept"))
        body = await read_body(request, settings.max_body_bytes)
        kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if kind not in (CSV_TYPE, JSON_TYPE):
            raise ServeError(415, "unsupported_media_type",
                             f"content type {kind or 'missing'!r} is not supported; send {CSV_TYPE} or {JSON_TYPE}")
        frame, single = _csv(body, model) if kind == CSV_TYPE else _json(body)
        try:
            answers = await asyncio.get_running_loop().run_in_executor(pool, model.answers, frame)
        except SchemaError as error:
            raise ServeError(400, "schema_error", error.message, column=error.column) from None
        except DataError as error:
            raise ServeError(400, "invalid_rows", error.message) from None
        metrics.images.inc(len(answers))
        metrics.latency.observe(time.perf_counter() - began)
        content = answers[0] if single else {"predictions": answers}
        return Response(json.dumps(content), media_type=JSON_TYPE)

    return app


def _csv(body: bytes, model: TabularModel) -> tuple[Any, bool]:
    """CSV rows -> a frame. Without a header the fields are the training table's columns in order,
    without the target (or only the model's features, in the schema's order)."""
    import pandas as pd

    try:
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ServeError(400, "invalid_csv", f"the body is not UTF-8 CSV: {error}") from None
    rows = [r for r in rows if r]
    if not rows:
        raise ServeError(400, "invalid_csv", "the body has no rows")
    inputs, features = model.card["input_columns"], list(model.schema)
    first = [c.strip() for c in rows[0]]
    if set(first) <= set(inputs) | set(features) | {model.card["problem"]["target"]}:
        header, rows = first, rows[1:]  # a header row: columns by name (a missing one is named below)
    else:
        widths = {len(inputs): inputs, len(features): features}
        bad = next((i for i, r in enumerate(rows) if len(r) not in widths), None)
        if bad is not None:
            raise ServeError(400, "schema_error", f"row {bad + 1} has {len(rows[bad])} fields; expected "
                                                  f"{len(inputs)} ({', '.join(inputs)}) or the {len(features)} "
                                                  f"features ({', '.join(features)})")
        header = widths[len(rows[0])]
    ragged = next((i for i, r in enumerate(rows) if len(r) != len(header)), None)
    if ragged is not None:
        raise ServeError(400, "schema_error", f"row {ragged + 1} has {len(rows[ragged])} fields; expected "
                                              f"{len(header)} ({', '.join(header)})")
    if not rows or len(rows) > MAX_ROWS:
        raise ServeError(400 if not rows else 413, "invalid_csv" if not rows else "too_many_rows",
                         "the body has a header but no rows" if not rows else f"at most {MAX_ROWS} rows per request")
    frame = pd.DataFrame(rows, columns=header).replace("", None)
    return frame, False


def _json(body: bytes) -> tuple[Any, bool]:
    """One record, a list of records, or {"instances": [...]} -> (frame, single record?)."""
    import pandas as pd

    document = parse_json(body)
    single = isinstance(document, dict) and "instances" not in document
    records = [document] if single else document.get("instances") if isinstance(document, dict) else document
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise ServeError(400, "invalid_json", 'expected a record {"column": value, ...}, a list of them, or '
                                              '{"instances": [...]}')
    if len(records) > MAX_ROWS:
        raise ServeError(413, "too_many_rows", f"at most {MAX_ROWS} rows per request")
    return pd.DataFrame.from_records(records), single


_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {
        CSV_TYPE: {"schema": {"type": "string"}},
        JSON_TYPE: {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}},
    }},
    "responses": {
        "200": {"description": "classification: {predicted_label, probability, probabilities, labels} per row; "
                               "regression: {prediction}; several rows: {predictions: [...]}"},
        "400": {"description": "a missing column or a value of the wrong type (the body names the column), bad "
                               "CSV or JSON"},
        "413": {"description": "body over the limit or too many rows"},
        "415": {"description": "a Content-Type other than text/csv or application/json"},
    },
}
