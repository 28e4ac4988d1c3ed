"""The FastAPI app serving ``models:/<name>@champion``.

A request follows load -> validate -> score -> answer -> log, one module each: ``loader`` (the
champion from the MLflow registry), ``inputs`` (request models generated from that model),
``scoring``, ``answers``, and the prediction log in ``mlops_kit.store.predictions``; ``metrics``
counts them for Prometheus. The endpoints are in ``routes/``. ``create_app(settings)`` only builds
the app; the model is loaded, the registry poller and the log writer start when the app starts
(its lifespan), and stop, with the log flushed, when it stops.
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi

from mlops_kit.config import Settings, get_settings
from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.loader import Champion, ChampionLoader
from mlops_kit.serving.answers import JSONBody, refusal
from mlops_kit.serving.docs import serve_docs
from mlops_kit.serving.metrics import ApiMetrics, RequestTimer
from mlops_kit.serving.mlflow_protocol import openapi_body
from mlops_kit.serving.routes import admin, invocations, metrics, predictions, status
from mlops_kit.serving.shadow import Shadow
from mlops_kit.store.predictions.writer import PredictionLog

DESCRIPTION = """
Serves the MLflow model version that carries the alias **champion** and follows the alias:
when it moves, the next requests are answered by the new version, without a restart.

`POST /predict` takes **one record** (a JSON object) or **a batch** (a JSON array of objects) of
raw measurements, and answers for each the predicted class, its confidence, every class
probability, whether the confidence is below the review threshold, and the model version that
answered. The schema and the example below are read from the model being served.

A record may carry the other columns of the model's training file too (an identifier, free
text, a date): they are accepted and not used, and the record's key comes back with its
prediction (`GET /model`: `ignored_columns`, `record_key`). Any other field is refused.

`POST /invocations` speaks MLflow's scoring protocol (`dataframe_split`, `dataframe_records`,
`instances`, `inputs`, `text/csv`) and answers as `mlflow models serve` does, through the same
validation: an unknown category is refused, in MLflow's error shape.

Every prediction is written to the prediction log; refused requests are not, but they are
counted with the rest in `GET /metrics` (the Prometheus text format).
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the log writer and load the champion; at the end stop polling and flush the log."""
    app.state.predlog.start()
    app.state.metrics.start(app.state.predlog)
    await run_in_threadpool(app.state.loader.start)
    if app.state.shadow is not None:
        await run_in_threadpool(app.state.shadow.start)
    if app.state.freeze_gc:
        # Move every object alive now (mlflow, scikit-learn, the model: ~344k) out of the garbage
        # collector's full scans: one took 0.3-0.4 s, stalling whatever request was running;
        # after gc.freeze() ~0 ms (measured on the 2-core machine, penguin model loaded).
        # `mlops-kit serve` started with the collector off (cli.serve): it is turned back on.
        gc.freeze()
        gc.enable()
    try:
        yield
    finally:
        app.state.loader.stop()
        if app.state.shadow is not None:
            app.state.shadow.stop()
        app.state.predlog.close()
        app.state.metrics.stop()


async def _refused(request: Request, exc: BadRequest) -> JSONBody:
    request.app.state.metrics.refusal(exc)
    return refusal(exc)


def create_app(settings: Settings | None = None, *, freeze_gc: bool = False) -> FastAPI:
    """Build the API for the given settings (nothing is loaded or started until the app starts).

    ``freeze_gc``: for a process that only serves (``server.py``), freeze what start-up loaded.
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="mlops-kit API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: serve_docs below, offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.loader = ChampionLoader(settings, settings.alias)
    app.state.predlog = PredictionLog(settings.store)
    app.state.shadow = Shadow(settings) if settings.shadow_alias else None
    app.state.started = time.monotonic()
    app.state.freeze_gc = freeze_gc
    app.state.metrics = ApiMetrics(settings.low_confidence)
    app.add_middleware(RequestTimer, metrics=app.state.metrics)
    app.add_exception_handler(BadRequest, _refused)  # type: ignore[arg-type]
    for module in (predictions, invocations, status, metrics, admin):
        app.include_router(module.router)
    serve_docs(app)  # /docs and /redoc with their assets served by the API, no CDN

    def openapi() -> dict[str, Any]:
        champion = app.state.loader.current
        version = champion.version if champion else None
        if app.openapi_schema is not None and app.state.openapi_version == version:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        document_requests(schema, champion, settings.max_batch)
        app.state.openapi_version = version
        app.openapi_schema = schema
        return schema

    app.state.openapi_version = None
    app.openapi = openapi  # type: ignore[method-assign]
    return app


def ignored_text(champion: Champion) -> str:
    """What /docs says of the training file's columns that the model accepts and ignores."""
    inputs, text = champion.inputs, ""
    if inputs.others:
        text += (
            "; the training file's other columns are accepted and ignored, so a row can be "
            f"sent as it is in the file: {', '.join(inputs.ignored)}"
        )
    if inputs.key:
        text += f"; '{inputs.key.shown}' is the record's key, sent back with its prediction"
    return text


def document_requests(schema: dict[str, Any], champion: Champion | None, max_batch: int) -> None:
    """Describe the request bodies from the served model: its request models and input example."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    record: dict[str, Any] = {"type": "object", "title": "Record"}
    table: dict[str, Any] = {"type": "object", "title": "Columns"}
    examples: dict[str, Any] = {}
    table_examples: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    if champion is None:
        record["description"] = "no model loaded yet: the fields are the champion's (GET /model)"
        table["description"] = record["description"]
    else:
        who = f"{champion.name} v{champion.version}"
        record = copy.deepcopy(champion.inputs.record.json_schema())
        record["description"] = (
            f"one record for {who}: numeric inputs are required, categorical ones may be null "
            "or left out" + ignored_text(champion)
        )
        table = copy.deepcopy(champion.inputs.columns.json_schema())
        table["description"] = (
            f"a batch for {who}, one array per input field, all of the same length: numeric "
            "columns are required, categorical ones may be left out" + ignored_text(champion)
        )
        rows = [champion.inputs.shown(row) for row in champion.examples]  # the file's names
        if rows:
            examples["one record"] = {"summary": "one record", "value": rows[0]}
            examples["batch"] = {"summary": f"a batch of {len(rows)} records", "value": rows}
            columns = {key: [row.get(key) for row in rows] for key in rows[0]}
            table_examples["columns"] = {
                "summary": f"a batch of {len(rows)} rows, column-wise",
                "value": columns,
            }
    components["Record"] = record
    components["Columns"] = table
    ref = {"$ref": "#/components/schemas/Record"}
    batch = {"type": "array", "items": ref, "minItems": 1, "maxItems": max_batch, "title": "Batch"}
    bodies = {
        "/predict": ({"oneOf": [ref, batch]}, examples),
        "/predict/columns": ({"$ref": "#/components/schemas/Columns"}, table_examples),
    }
    schema["paths"]["/invocations"]["post"]["requestBody"] = openapi_body(rows)
    for path, (body_schema, body_examples) in bodies.items():
        content: dict[str, Any] = {"schema": body_schema}
        if body_examples:
            content["examples"] = body_examples
        schema["paths"][path]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": content},
        }
