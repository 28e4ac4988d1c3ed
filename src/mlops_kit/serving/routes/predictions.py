"""POST /predict (records) and POST /predict/columns (a batch column-wise).

One request, start to end (``answer``): validate the body with the champion's request models,
score the records, render the answer, and hand a log entry to the prediction log; the metrics
(``metrics.py``) count what was answered or refused. The body is read
only up to a limit derived from the model's inputs, so an oversized request costs no parsing.
``serve`` is that path for any route: a ``Dialect`` says which bodies it takes and how its answers
and refusals look (MLflow's ``/invocations`` is the other dialect, in ``invocations.py``).
"""

from __future__ import annotations

import re
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.inputs import OTHER_CHARS, Parsed, RequestModels
from mlops_kit.scoring.loader import Champion
from mlops_kit.scoring.score import Scores, score
from mlops_kit.serving.answers import (
    ColumnsResponse,
    ErrorResponse,
    PredictResponse,
    columns_answer,
    records_answer,
    refusal,
)
from mlops_kit.serving.routes.deps import (
    LoaderDep,
    LogDep,
    MetricsDep,
    SettingsDep,
    champion_of,
)
from mlops_kit.store.predictions.entry import API, LogEntry

INLINE_BYTES = 32 * 1024  # bodies up to this size are scored on the event loop (no thread hop)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

ERRORS = {
    400: {"model": ErrorResponse, "description": "Body is empty or not valid JSON"},
    413: {"model": ErrorResponse, "description": "Body larger than the limit (see GET /model)"},
    415: {"model": ErrorResponse, "description": "Body is not sent as application/json"},
    422: {
        "model": ErrorResponse,
        "description": "A record is invalid (each problem names its field), or too many records",
    },
    503: {"model": ErrorResponse, "description": "No model loaded yet, or the log is far behind"},
}

router = APIRouter(tags=["predictions"])


@dataclass(frozen=True)
class Dialect:
    """What differs between routes: the content types taken, how a body is read, answered, refused."""

    accept: Callable[[str], object]  # raises a 415 for a content type the route does not take
    read: Callable[[bytes, str, RequestModels], Parsed]  # body, content type -> validated records
    render: Callable[[Champion, Scores, str, float], Any]  # -> the answer's JSON structure
    refuse: Callable[[BadRequest, dict[str, str]], Response] = refusal


def json_only(content_type: str) -> None:
    """Refuse (415) a body not sent as JSON."""
    if "json" not in content_type.lower():
        raise BadRequest(
            415, f"send the body as JSON (Content-Type: application/json), not {content_type}"
        )


RECORDS = Dialect(json_only, lambda body, _, inputs: inputs.parse_records(body), records_answer)
COLUMNS = Dialect(json_only, lambda body, _, inputs: inputs.parse_columns(body), columns_answer)


def answer(
    body: bytes,
    champion: Champion,
    request_id: str,
    threshold: float,
    dialect: Dialect = RECORDS,
    content_type: str = "application/json",
) -> tuple[bytes, LogEntry]:
    """Validate, score and answer one body; the JSON answer and the log entry (or BadRequest)."""
    try:
        parsed = dialect.read(body, content_type, champion.inputs)
    except BadRequest as exc:
        # The traceback holds the parsed body (a refused batch may be a million objects) and the
        # thread pool keeps it in a reference cycle until a full garbage collection. Four
        # concurrent 3.1 MB bodies of [{},{},...]: RSS 334 MB before, still ~630-680 MB seconds
        # after without this line; ~400 MB with it (tests/serving/test_memory.py).
        traceback.clear_frames(exc.__traceback__)
        raise
    scores = score(champion, parsed, threshold)
    text = pydantic_core.to_json(dialect.render(champion, scores, request_id, threshold))
    entry = LogEntry(
        request_id=request_id,
        created_at=scores.created_at,
        model_name=champion.name,
        model_version=champion.version,
        inputs=parsed.columns,
        predicted=scores.predicted,
        confidence=scores.confidence.tolist(),
        probabilities=scores.probabilities,
        classes=champion.classes,
        low_confidence=scores.low_confidence.tolist(),
        low_confidence_threshold=threshold,  # the one the answer shows
        record_keys=scores.keys,
        source=API,
    )
    return text, entry


async def read_body(request: Request, limit: int, ignored: bool = False) -> bytes:
    """The request body, refused with a 413 as soon as it is known to be over the limit.

    ``ignored``: the model accepts columns it does not use, which the limit counts for little.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body has {declared} bytes; {_limit_text(limit, ignored)}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"the body is over the limit; {_limit_text(limit, ignored)}")
        chunks.append(chunk)
    return b"".join(chunks)


def _limit_text(limit: int, ignored: bool = False) -> str:
    text = (
        f"the limit is {limit} bytes (a full batch of the widest records this model accepts: "
        "MLOPS_KIT_MAX_BATCH records)"
    )
    if ignored:
        text += (
            "; the columns the model does not use (GET /model, ignored_columns) count for "
            f"{OTHER_CHARS} characters a record: leave them out of a big batch, or send fewer "
            "records"
        )
    return text


async def serve(
    request: Request,
    loader: LoaderDep,
    log: LogDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    dialect: Dialect,
) -> Response:
    """One request of any route: champion, body, answer, log entry and metrics (or a refusal)."""
    given = request.headers.get("x-request-id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    headers = {"X-Request-ID": request_id}
    try:
        champion = champion_of(loader)  # read once: this version answers the request
        if log.backlogged():
            behind = f"the prediction log is {log.pending} rows behind: retry shortly"
            raise BadRequest(503, behind, headers={"Retry-After": "1"})
        content_type = request.headers.get("content-type", "application/json")
        dialect.accept(content_type)
        body = await read_body(request, champion.inputs.body_limit, bool(champion.inputs.others))
        work = (body, champion, request_id, settings.low_confidence, dialect, content_type)
        if len(body) <= INLINE_BYTES:
            text, entry = answer(*work)
        else:  # a big batch: in a worker thread, so /health still answers meanwhile
            text, entry = await run_in_threadpool(answer, *work)
    except BadRequest as exc:
        refused = dialect.refuse(exc, headers)
        metrics.refusal(exc, refused.status_code)
        return refused
    log.submit(entry)
    if request.app.state.shadow is not None:  # scored again off the request path, never sent
        request.app.state.shadow.submit(entry)
    metrics.answered(entry)
    headers.update({"X-Model-Name": champion.name, "X-Model-Version": champion.version})
    return Response(text, media_type="application/json", headers=headers)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    summary="Predict the class of one record or a batch of records",
)
async def predict(
    request: Request, loader: LoaderDep, log: LogDep, settings: SettingsDep, metrics: MetricsDep
) -> Response:
    """One record as a JSON object, or a batch as a JSON array of records (up to the limit)."""
    return await serve(request, loader, log, settings, metrics, RECORDS)


@router.post(
    "/predict/columns",
    response_model=ColumnsResponse,
    responses=ERRORS,
    summary="Predict a batch sent column-wise (the fast way for big batches)",
)
async def predict_columns(
    request: Request, loader: LoaderDep, log: LogDep, settings: SettingsDep, metrics: MetricsDep
) -> Response:
    """A batch as one JSON array per input field, all of the same length (up to the limit).

    What pandas gives with `df.to_dict("list")` (missing values as null). The answer is
    column-wise too: one array per output, rows in the order sent. Same rules, same log.
    """
    return await serve(request, loader, log, settings, metrics, COLUMNS)
