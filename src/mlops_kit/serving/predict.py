"""One /predict request: validate the body, score it with one Champion, render the answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pydantic_core
from pydantic import ValidationError

from mlops_kit.serving.loader import Champion
from mlops_kit.serving.predlog import LogEntry
from mlops_kit.serving.schemas import BadRequest, InputSpec, validation_error

_LEADING_SPACE = re.compile(rb"\s*")
_KINDS = {"t": "a boolean", "f": "a boolean", "n": "null", '"': "a string"}


@dataclass(frozen=True)
class Parsed:
    """A validated body: its records, the same values column-wise, and whether it was a batch."""

    records: list[dict[str, Any]]
    columns: dict[str, list[Any]]
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
    try:
        value = (spec.batch if batch else spec.record).validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc, spec, batch) from None
    records = value if batch else [value]
    return Parsed(records, spec.columns(records), batch)


@dataclass(frozen=True)
class Scored:
    """The rendered response and the log entry of one successful request."""

    body: bytes
    entry: LogEntry


def score(champion: Champion, parsed: Parsed, request_id: str, threshold: float) -> Scored:
    """Score validated records with one champion; the response and the log entry both name it."""
    created_at = datetime.now(UTC)
    records = parsed.records
    n = len(records)
    proba = champion.predict_proba(parsed.columns, n)
    finite = np.isfinite(proba).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)[:10].tolist()
        raise BadRequest(
            422,
            f"record(s) {bad}: the model cannot score these values (its probabilities are not "
            "finite); check the units and magnitudes of the measurements",
        )
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(n), best]
    classes = champion.classes
    predicted = [classes[i] for i in best.tolist()]
    conf = confidence.tolist()
    low = (confidence < threshold).tolist()
    probabilities = proba.tolist()
    name, version = champion.name, champion.version
    answers = zip(predicted, conf, probabilities, low, strict=True)
    body = pydantic_core.to_json(
        {
            "request_id": request_id,
            "model_name": name,
            "model_version": version,
            "low_confidence_threshold": threshold,
            "predictions": [
                {
                    "predicted": p,
                    "confidence": c,
                    "probabilities": dict(zip(classes, row, strict=True)),
                    "low_confidence": lo,
                    "model_name": name,
                    "model_version": version,
                }
                for p, c, row, lo in answers
            ],
        }
    )
    entry = LogEntry(
        request_id, created_at, name, version, records, predicted, conf, probabilities, classes, low
    )
    return Scored(body, entry)


def handle(body: bytes, champion: Champion, request_id: str, threshold: float) -> Scored:
    """Parse, validate and score one request body (raises BadRequest for anything refused)."""
    return score(champion, parse(body, champion.spec), request_id, threshold)
