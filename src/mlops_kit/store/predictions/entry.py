"""A served request as the log keeps it: the ``predictions`` table and ``LogEntry``, its rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlops_kit.store.db import metadata, to_json


def log_table(name: str) -> sa.Table:
    """A table of served predictions: the log itself, or the shadow model's answers beside it."""
    return sa.Table(
        name,
        metadata,
        # 64-bit on a server (a team's log outgrows 2^31 rows); SQLite's rowid is 64-bit already
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),  # UTC
        sa.Column("record_index", sa.Integer, nullable=False),  # position in the request's batch
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("input", sa.JSON, nullable=False),  # the record as validated; absent: null
        sa.Column("predicted", sa.String(200), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),  # {class: probability}
        sa.Column("low_confidence", sa.Boolean, nullable=False),
        # the threshold the API flagged it with; NULL in rows logged before the kit kept it
        sa.Column("low_confidence_threshold", sa.Float, nullable=True),
        # the record's own key (its identifier column, as text); NULL: the model has none
        sa.Column("record_key", sa.String, nullable=True),
        # where the request came from: 'api' or 'batch'; NULL in rows logged before (all 'api')
        sa.Column("source", sa.String(16), nullable=True),
    )


predictions = log_table("predictions")  # what the API answered
# what a shadow model (serve --shadow ALIAS) answered to the same requests, never sent back
shadow_predictions = log_table("shadow_predictions")
BASE_COLUMNS = [
    "id",
    "request_id",
    "created_at",
    "record_index",
    "model_name",
    "model_version",
    "predicted",
    "confidence",
    "low_confidence",
    "low_confidence_threshold",
    "record_key",
    "source",
]
API, BATCH = "api", "batch"  # the sources of logged predictions


def _plain(values: np.ndarray | Sequence[Any]) -> list[Any]:
    """A column as JSON-ready Python values; a number left out (NaN) becomes None."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            return np.where(np.isnan(values), None, values).tolist()
        return values.tolist()
    return list(values)


@dataclass(frozen=True)
class LogEntry:
    """One served request: its records column-wise, and the model's answers, as scored."""

    request_id: str
    created_at: datetime
    model_name: str
    model_version: str
    inputs: Mapping[str, Sequence[Any]]  # column per input field, model order; None: absent
    predicted: list[str]
    confidence: list[float]
    probabilities: np.ndarray  # records × classes
    classes: list[str]
    low_confidence: list[bool]
    low_confidence_threshold: float | None = None  # the API's, one per request
    record_keys: Sequence[Any] | None = None  # each record's key (None: the model has no key)
    source: str = API  # who scored it: the API, or a batch run

    def keys(self) -> list[str | None]:
        """Each record's key as the log keeps it: text (a number as its JSON text), or None."""
        if self.record_keys is None:
            return [None] * len(self)
        keys = list(self.record_keys)
        if all(type(k) is str for k in keys):  # the usual case: identifiers are text
            return keys
        return [key_text(k) for k in keys]

    @classmethod
    def from_records(
        cls,
        request_id: str,
        created_at: datetime,
        model_name: str,
        model_version: str,
        records: list[dict[str, Any]],
        predicted: list[str],
        confidence: list[float],
        probabilities: list[list[float]],
        classes: list[str],
        low_confidence: list[bool],
        *,
        low_confidence_threshold: float | None = None,
        record_keys: Sequence[Any] | None = None,
        source: str = API,
    ) -> LogEntry:
        """An entry from records and per-record probability lists (for callers other than the API)."""
        names = list(dict.fromkeys(name for record in records for name in record))
        inputs = {name: [_missing_as_none(r.get(name)) for r in records] for name in names}
        matrix = np.asarray(probabilities, dtype=np.float64).reshape(len(records), len(classes))
        return cls(
            request_id, created_at, model_name, model_version, inputs,
            list(predicted), list(confidence), matrix, list(classes), list(low_confidence),
            low_confidence_threshold, record_keys, source,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.predicted)

    def records(self) -> Iterator[dict[str, Any]]:
        """Each record as a plain dict, fields in model order, absent values None."""
        names = list(self.inputs)
        columns = [_plain(values) for values in self.inputs.values()]
        # a row holds one value per name by construction (strict checks would double the cost)
        return (dict(zip(names, row, strict=False)) for row in zip(*columns, strict=True))

    def probability_records(self) -> Iterator[dict[str, float]]:
        """Each record's ``{class: probability}``."""
        classes = self.classes
        return (dict(zip(classes, row, strict=False)) for row in self.probabilities.tolist())

    def rows(self) -> list[dict[str, Any]]:
        """One table row per record, for SQLAlchemy Core."""
        created_at = self.created_at.astimezone(UTC)
        answers = zip(
            self.records(), self.predicted, self.confidence,
            self.probability_records(), self.low_confidence, self.keys(),
            strict=True,
        )  # fmt: skip
        return [
            {
                "request_id": self.request_id,
                "created_at": created_at,
                "record_index": i,
                "model_name": self.model_name,
                "model_version": self.model_version,
                "input": record,
                "predicted": predicted,
                "confidence": confidence,
                "probabilities": proba,
                "low_confidence": bool(low),
                "low_confidence_threshold": self.low_confidence_threshold,
                "record_key": key,
                "source": self.source,
            }
            for i, (record, predicted, confidence, proba, low, key) in enumerate(answers)
        ]


def key_text(value: Any) -> str | None:
    """A record's key as text: a string as it is, another value as its JSON text; missing: None."""
    value = _missing_as_none(value.item() if isinstance(value, np.generic) else value)
    if value is None or isinstance(value, str):
        return value
    return to_json(value)


def _missing_as_none(value: Any) -> Any:
    """None for a missing value (None or NaN), else the value."""
    return None if value is None or (isinstance(value, float) and value != value) else value
