"""The FastAPI app serving ``models:/<name>@champion``: /predict (and /predict/columns), /health,
/model, /admin/reload.

``create_app(settings)`` only builds the app; the model is loaded, the registry poller and the
prediction-log writer are started when the app starts (its lifespan), and stopped, with the log
flushed, when it stops.
"""

from __future__ import annotations

import copy
import gc
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mlops_kit.config import Settings, get_settings
from mlops_kit.serving.loader import Champion, ChampionLoader
from mlops_kit.serving.predict import Scored, handle, handle_columns
from mlops_kit.serving.schemas import (
    BadRequest,
    ColumnsResponse,
    ErrorResponse,
    Health,
    ModelInfo,
    PredictResponse,
    ReloadResult,
)
from mlops_kit.store.predictions import PredictionLog

INLINE_BYTES = 32 * 1024  # bodies up to this size are scored on the event loop (no thread hop)
BYTES_PER_RECORD = 2048  # body size allowed per record of the batch limit
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

DESCRIPTION = """
Serves the MLflow model version that carries the alias **champion** and follows the alias:
when it moves, the next requests are answered by the new version, without a restart.

`POST /predict` takes **one record** (a JSON object) or **a batch** (a JSON array of objects) of
raw measurements, and answers for each the predicted class, its confidence, every class
probability, whether the confidence is below the review threshold, and the model version that
answered. The schema and the example below are read from the model being served.

Every prediction is written to the prediction log; refused requests are not.
"""

_errors = {
    400: {"model": ErrorResponse, "description": "Body is empty or not valid JSON"},
    413: {"model": ErrorResponse, "description": "Body larger than the limit"},
    415: {"model": ErrorResponse, "description": "Body is not sent as application/json"},
    422: {
        "model": ErrorResponse,
        "description": "A record is invalid (each problem names its field), or too many records",
    },
    503: {"model": ErrorResponse, "description": "No model loaded yet, or the log is far behind"},
}


def _error(exc: BadRequest, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        exc.body(), status_code=exc.status, headers={**exc.headers, **(headers or {})}
    )


def _no_model(loader: ChampionLoader) -> BadRequest:
    why = loader.registry.error or "the model is still loading"
    return BadRequest(503, f"no model loaded: {why}")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body has {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings | None = None, *, freeze_gc: bool = False) -> FastAPI:
    """Build the API for the given settings (nothing is loaded or started until the app starts).

    ``freeze_gc`` (for a dedicated server process): after start-up, move every object alive
    (mlflow, sklearn, the model) out of the garbage collector's full scans, which otherwise
    stall a large batch by ~0.2 s now and then.
    """
    settings = settings or get_settings()
    loader = ChampionLoader(settings)
    predlog = PredictionLog(settings.store)
    body_limit = 64 * 1024 + settings.max_batch * BYTES_PER_RECORD
    started = time.monotonic()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        predlog.start()
        await run_in_threadpool(loader.start)
        if freeze_gc:
            gc.freeze()
        try:
            yield
        finally:
            loader.stop()
            predlog.close()

    app = FastAPI(
        title="mlops-kit API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.loader = loader
    app.state.predlog = predlog

    @app.exception_handler(BadRequest)
    async def _bad_request(_request: Request, exc: BadRequest) -> JSONResponse:
        return _error(exc)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "No model loaded"}},
        summary="Liveness, whether a model is loaded, registry and log status",
    )
    async def health() -> JSONResponse:
        """`ok`; `degraded`: serving, but the registry or the log has a problem; `unavailable`."""
        champion, registry, log_status = loader.current, loader.registry, predlog.status()
        if champion is None:
            status = "unavailable"
        elif registry.error or log_status["error"]:
            status = "degraded"
        else:
            status = "ok"
        body = {
            "status": status,
            "model_loaded": champion is not None,
            "model_name": settings.model_name,
            "model_version": champion.version if champion else None,
            "registry": {
                "reachable": registry.reachable,
                "last_check": registry.last_check,
                "error": registry.error,
                "reload_interval": settings.reload_interval,
            },
            "prediction_log": log_status,
            "uptime_s": round(time.monotonic() - started, 1),
        }
        return JSONResponse(body, status_code=503 if champion is None else 200)

    @app.get(
        "/model",
        response_model=ModelInfo,
        responses={503: _errors[503]},
        summary="The model being served: version, run, data version, metrics, inputs",
    )
    async def model_info() -> JSONResponse:
        champion = loader.current
        if champion is None:
            raise _no_model(loader)
        body = champion.info()
        body.update(low_confidence_threshold=settings.low_confidence, max_batch=settings.max_batch)
        return JSONResponse(body)

    async def serve_request(request: Request, handler: Callable[..., Scored]) -> Response:
        champion: Champion | None = loader.current  # read once: this version answers the request
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        headers = {"X-Request-ID": request_id}
        try:
            if champion is None:
                raise _no_model(loader)
            if predlog.backlogged():
                behind = f"the prediction log is {predlog.pending} rows behind: retry shortly"
                raise BadRequest(503, behind, headers={"Retry-After": "1"})
            content_type = request.headers.get("content-type", "application/json")
            if "json" not in content_type.lower():
                raise BadRequest(
                    415,
                    f"send the body as JSON (Content-Type: application/json), not {content_type}",
                )
            body = await _read_body(request, body_limit)
            if len(body) <= INLINE_BYTES:
                scored = handler(body, champion, request_id, settings.low_confidence)
            else:  # a big batch: score it in a worker thread, so /health still answers meanwhile
                scored = await run_in_threadpool(
                    handler, body, champion, request_id, settings.low_confidence
                )
        except BadRequest as exc:
            return _error(exc, headers)
        predlog.submit(scored.entry)
        headers.update({"X-Model-Name": champion.name, "X-Model-Version": champion.version})
        return Response(scored.body, media_type="application/json", headers=headers)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=_errors,
        summary="Predict the class of one record or a batch of records",
    )
    async def predict(request: Request) -> Response:
        """One record as a JSON object, or a batch as a JSON array of records (up to the limit)."""
        return await serve_request(request, handle)

    @app.post(
        "/predict/columns",
        response_model=ColumnsResponse,
        responses=_errors,
        summary="Predict a batch sent column-wise (the fast way for big batches)",
    )
    async def predict_columns(request: Request) -> Response:
        """A batch as one JSON array per input field, all of the same length (up to the limit).

        What pandas gives with `df.to_dict("list")` (missing values as null). The answer is
        column-wise too: one array per output, rows in the order sent. Same rules, same log.
        """
        return await serve_request(request, handle_columns)

    bearer = HTTPBearer(auto_error=False, description="MLOPS_KIT_ADMIN_TOKEN")

    @app.post(
        "/admin/reload",
        response_model=ReloadResult,
        responses={
            401: {"model": ErrorResponse, "description": "Missing or wrong token"},
            403: {"model": ErrorResponse, "description": "Admin endpoints are disabled"},
            503: {"model": ErrorResponse, "description": "The registry cannot be reached"},
        },
        summary="Check the registry now and serve the new champion if the alias moved",
    )
    async def reload(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> JSONResponse:
        """Needs `Authorization: Bearer <MLOPS_KIT_ADMIN_TOKEN>`; disabled when no token is set."""
        token = settings.admin_token
        if not token:
            raise BadRequest(
                403, "admin endpoints are disabled: set MLOPS_KIT_ADMIN_TOKEN to enable them"
            )
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise BadRequest(
                401,
                "missing or wrong admin token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        before = loader.current
        swapped, message = await run_in_threadpool(loader.check)
        after = loader.current
        if after is None or (not swapped and loader.registry.error):
            raise BadRequest(503, message)
        return JSONResponse(
            {
                "reloaded": swapped,
                "model_name": settings.model_name,
                "previous_version": before.version if before else None,
                "model_version": after.version,
                "message": message,
            }
        )

    def openapi() -> dict[str, Any]:
        champion = loader.current
        version = champion.version if champion else None
        if app.openapi_schema is not None and app.state.openapi_version == version:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        _document_request(schema, champion, settings.max_batch)
        app.state.openapi_version = version
        app.openapi_schema = schema
        return schema

    app.state.openapi_version = None
    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _document_request(schema: dict[str, Any], champion: Champion | None, max_batch: int) -> None:
    """Describe the /predict bodies from the served model: its record schema and example records."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if champion is None:
        record: dict[str, Any] = {
            "type": "object",
            "title": "Record",
            "description": "no model loaded yet: the fields are the champion's (see GET /model)",
        }
        table: dict[str, Any] = {**record, "title": "Columns"}
        examples: dict[str, Any] = {}
        table_examples: dict[str, Any] = {}
    else:
        record = copy.deepcopy(champion.spec.record_schema())
        record["description"] = (
            f"one record for {champion.name} v{champion.version}: numeric inputs are required, "
            "categorical ones may be null or left out"
        )
        table = copy.deepcopy(champion.spec.columns_schema())
        table["description"] = (
            f"a batch for {champion.name} v{champion.version}, one array per input field, all of "
            "the same length: numeric columns are required, categorical ones may be left out"
        )
        rows = champion.examples or []
        examples, table_examples = {}, {}
        if rows:
            examples["one record"] = {"summary": "one record", "value": rows[0]}
            examples["batch"] = {"summary": f"a batch of {len(rows)} records", "value": rows}
            columns = {f.name: [row.get(f.name) for row in rows] for f in champion.spec.fields}
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
    for path, (body_schema, body_examples) in bodies.items():
        content: dict[str, Any] = {"schema": body_schema}
        if body_examples:
            content["examples"] = body_examples
        schema["paths"][path]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": content},
        }
