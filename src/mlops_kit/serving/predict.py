"""One prediction request: validate the body (records or columns), score it, render the answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pydantic_core
from pydantic import ValidationError

from mlops_kit.serving import jsontext
from mlops_kit.serving.loader import Champion
from mlops_kit.serving.schemas import BadRequest, InputSpec, columns_error, validation_error
from mlops_kit.store.predictions import LogEntry

_LEADING_SPACE = re.compile(rb"\s*")
_KINDS = {"t": "a boolean", "f": "a boolean", "n": "null", '"': "a string"}
_BOOLS = np.array(["false", "true"], dtype=object)


@dataclass(frozen=True)
class Parsed:
    """A validated body: its records column-wise (model order), how many, and if it was a batch."""

    columns: dict[str, Any]
    rows: int
    batch: bool


def parse(body: bytes, spec: InputSpec) -> Parsed:
    """Validate a body holding one record (JSON object) or a batch (JSON array of objects)."""
    start = body[_LEADING_SPACE.match(body).end() :][:1]  # type: ignore[union-attr]
    if not start:
        raise BadRequest(
            400,
            "the body is empty: send one record as a JSON object, or a batch as an array of them",
        )
    if start not in (b"{", b"["):
        try:
            pydantic_core.from_json(body)
        except ValueError as exc:
            raise BadRequest(400, f"the body is not valid JSON: {exc}") from None
        kind = _KINDS.get(start.decode(errors="replace"), "a number")
        raise BadRequest(
            422, f"the body must be a JSON object (one record) or an array of records, got {kind}"
        )
    batch = start == b"["
    try:  # the bulk check accepts valid bodies quickly; anything else gets the full validator
        columns = spec.valid_columns(pydantic_core.from_json(body), batch)
    except ValueError:
        columns = None
    if columns is not None:
        return Parsed(columns, len(next(iter(columns.values()))), batch)
    try:
        value = (spec.batch if batch else spec.record).validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc, spec, batch) from None
    records = value if batch else [value]
    return Parsed(spec.columns(records), len(records), batch)


def parse_columns(body: bytes, spec: InputSpec) -> Parsed:
    """Validate a batch sent column-wise: a JSON object of one array of values per input field."""
    if not body.strip():
        raise BadRequest(400, "the body is empty: send a JSON object of columns, {field: [values]}")
    try:
        table = spec.table.validate_json(body)
    except ValidationError as exc:
        raise columns_error(exc, spec) from None
    lengths = {name: len(values) for name, values in table.items()}
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"'{name}' has {n}" for name, n in lengths.items())
        raise BadRequest(422, f"the columns must all have the same number of rows: {sizes}")
    rows = next(iter(lengths.values()))
    columns: dict[str, Any] = {}
    for f in spec.fields:
        values = table.get(f.name, [None] * rows)
        columns[f.name] = np.array(values, dtype=np.float64) if f.kind == "number" else values
    return Parsed(columns, rows, batch=True)


@dataclass(frozen=True)
class Scored:
    """The rendered response and the log entry of one successful request."""

    body: bytes
    entry: LogEntry


@dataclass(frozen=True)
class _Answers:
    """What the model says about each record: probabilities, best class, its confidence."""

    proba: np.ndarray
    best: np.ndarray
    predicted: list[str]
    confidence: np.ndarray
    low: np.ndarray
    created_at: datetime


def _answers(champion: Champion, parsed: Parsed, threshold: float) -> _Answers:
    created_at = datetime.now(UTC)
    proba = champion.predict_proba(parsed.columns, parsed.rows)
    finite = np.isfinite(proba).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)[:10].tolist()
        raise BadRequest(
            422,
            f"record(s) {bad}: the model cannot score these values (its probabilities are not "
            "finite); check the units and magnitudes of the measurements",
        )
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(parsed.rows), best]
    predicted = np.array(champion.classes, dtype=object)[best].tolist()
    return _Answers(proba, best, predicted, confidence, confidence < threshold, created_at)


def _head(champion: Champion, request_id: str, threshold: float) -> str:
    """The response's opening fields, as JSON text without the closing brace."""
    return jsontext.dumps(
        {
            "request_id": request_id,
            "model_name": champion.name,
            "model_version": champion.version,
            "low_confidence_threshold": threshold,
        }
    )[:-1]


def _entry(
    champion: Champion,
    parsed: Parsed,
    request_id: str,
    answers: _Answers,
    received: bytes | None,
) -> LogEntry:
    return LogEntry(
        request_id,
        answers.created_at,
        champion.name,
        champion.version,
        parsed.columns,
        answers.predicted,
        answers.confidence.tolist(),
        answers.proba,
        champion.classes,
        answers.low.tolist(),
        received if received is not None and jsontext.brace_free(parsed.columns) else None,
    )


def score(
    champion: Champion,
    parsed: Parsed,
    request_id: str,
    threshold: float,
    body: bytes | None = None,
) -> Scored:
    """Score validated records with one champion; the response and the log entry both name it.

    The answer is one object per record. ``body`` (the request as sent) lets the log store each
    record as it was sent.
    """
    answers = _answers(champion, parsed, threshold)
    classes = champion.classes
    # every probability as JSON text, class by class; the confidence is one of them
    texts = np.array([jsontext.number_texts(column) for column in answers.proba.T], object)
    fill = jsontext.template(
        [
            ("predicted", None),
            ("confidence", None),
            ("probabilities", [(c, None) for c in classes]),
            ("low_confidence", None),
            ("model_name", jsontext.dumps(champion.name)),
            ("model_version", jsontext.dumps(champion.version)),
        ]
    ).__mod__
    class_texts = np.array([jsontext.dumps(c) for c in classes], object)
    rows = zip(
        class_texts[answers.best].tolist(),
        texts[answers.best, np.arange(parsed.rows)].tolist(),
        *texts.tolist(),
        _BOOLS[answers.low.view(np.int8)].tolist(),
        strict=True,
    )
    head = _head(champion, request_id, threshold)
    response = f'{head},"predictions":[{",".join(map(fill, rows))}]}}'.encode()
    return Scored(response, _entry(champion, parsed, request_id, answers, body))


def score_columns(champion: Champion, parsed: Parsed, request_id: str, threshold: float) -> Scored:
    """Score a column-wise batch; the answer is column-wise too (one array per output)."""
    answers = _answers(champion, parsed, threshold)
    classes = champion.classes
    columns = jsontext.dumps(
        {
            "rows": parsed.rows,
            "predicted": answers.predicted,
            "confidence": answers.confidence.tolist(),
            "probabilities": {
                c: column.tolist() for c, column in zip(classes, answers.proba.T, strict=True)
            },
            "low_confidence": answers.low.tolist(),
        }
    )
    response = f"{_head(champion, request_id, threshold)},{columns[1:]}".encode()
    return Scored(response, _entry(champion, parsed, request_id, answers, None))


def handle(body: bytes, champion: Champion, request_id: str, threshold: float) -> Scored:
    """Parse, validate and score one request body (raises BadRequest for anything refused)."""
    return score(champion, parse(body, champion.spec), request_id, threshold, body)


def handle_columns(body: bytes, champion: Champion, request_id: str, threshold: float) -> Scored:
    """Parse, validate and score a column-wise batch (raises BadRequest for anything refused)."""
    return score_columns(champion, parse_columns(body, champion.spec), request_id, threshold)
