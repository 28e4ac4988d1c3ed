"""The prediction log: every served prediction, written off the request path to a SQL database.

A request only puts one entry (its records and the model's answers) on a queue; a single writer
thread turns entries into rows and inserts them in batches, one transaction per batch. One writer
means no lost or interleaved rows however many requests arrive at once; the queue means a slow disk
never delays a response. SQLite (the default, in the workspace) runs in WAL mode with
synchronous=NORMAL so readers such as the monitoring notebook never block the writer; any other
SQLAlchemy URL (e.g. ``postgresql+psycopg://…``) works through ``MLOPS_KIT_STORE_URL``.
Rejected requests never reach the queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlops_kit.config import Settings
from mlops_kit.model import PROBA_PREFIX
from mlops_kit.serving import jsontext
from mlops_kit.store.db import make_engine, metadata

log = logging.getLogger(__name__)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),  # UTC
    sa.Column("record_index", sa.Integer, nullable=False),  # position in the request's batch
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("input", sa.JSON, nullable=False),  # the record as received (validated)
    sa.Column("predicted", sa.String(200), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("probabilities", sa.JSON, nullable=False),  # {class: probability}
    sa.Column("low_confidence", sa.Boolean, nullable=False),
)
INSERT_COLUMNS = [c.name for c in predictions.columns if c.name != "id"]
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite
MAX_PENDING_ROWS = 200_000  # beyond this backlog /predict answers 503 instead of queueing more
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
]


class JSONText(str):
    """A value already encoded as JSON text: stored in a JSON column as it is."""

    __slots__ = ()


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
    received: bytes | None = None  # the body as sent, if its records can be cut from it

    def input_texts(self) -> list[str]:
        """Each record as JSON text: as sent when the body can be cut, else rendered."""
        if self.received is not None:
            cut = jsontext.cut_records(self.received, len(self))
            if cut is not None:
                return cut
        return jsontext.records_texts(self.inputs)

    def probability_texts(self) -> list[str]:
        """Each record's ``{class: probability}`` as JSON text."""
        columns = {c: self.probabilities[:, j] for j, c in enumerate(self.classes)}
        return jsontext.records_texts(columns)

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
    ) -> LogEntry:
        """An entry from records and per-record probability lists (for callers other than the API)."""
        names = list(dict.fromkeys(name for record in records for name in record))
        inputs = {name: [record.get(name) for record in records] for name in names}
        matrix = np.asarray(probabilities, dtype=np.float64).reshape(len(records), len(classes))
        return cls(
            request_id, created_at, model_name, model_version, inputs,
            list(predicted), list(confidence), matrix, list(classes), list(low_confidence),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.predicted)

    def rows(self) -> list[dict[str, Any]]:
        """One table row per record, for SQLAlchemy Core."""
        answers = zip(
            self.input_texts(), self.predicted, self.confidence,
            self.probability_texts(), self.low_confidence,
            strict=True,
        )  # fmt: skip
        return [
            {
                "request_id": self.request_id,
                "created_at": self.created_at,
                "record_index": i,
                "model_name": self.model_name,
                "model_version": self.model_version,
                "input": JSONText(record),
                "predicted": predicted,
                "confidence": confidence,
                "probabilities": JSONText(proba),
                "low_confidence": low,
            }
            for i, (record, predicted, confidence, proba, low) in enumerate(answers)
        ]

    def sqlite_rows(self) -> list[tuple[Any, ...]]:
        """One row per record in INSERT_COLUMNS order, as SQLAlchemy would store it in SQLite."""
        n = len(self)
        created_at = self.created_at.astimezone(UTC).strftime(SQLITE_DATETIME)
        return list(
            zip(
                repeat(self.request_id, n), repeat(created_at, n), range(n),
                repeat(self.model_name, n), repeat(self.model_version, n),
                self.input_texts(), self.predicted, self.confidence,
                self.probability_texts(), map(int, self.low_confidence),
                strict=True,
            )
        )  # fmt: skip


_STOP = object()


class PredictionLog:
    """A queue in front of one writer thread that inserts served predictions in batches."""

    def __init__(
        self, url: str, max_rows_per_write: int = 5000, retries: int = 3, fast_sqlite: bool = True
    ) -> None:
        self.url = url
        self.max_rows_per_write = max_rows_per_write
        self.retries = retries
        # On SQLite, rows go to the driver as plain tuples: the same stored values as through
        # SQLAlchemy's type processing, for a third of the CPU (which requests need: one GIL).
        self.fast_sqlite = fast_sqlite and sa.engine.make_url(url).get_backend_name() == "sqlite"
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._submitted = 0
        self._written = 0
        self._failed = 0
        self._error: str | None = None
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the table if needed and start the writer thread."""
        self._engine = make_engine(self.url)
        metadata.create_all(self._engine)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, entry: LogEntry) -> None:
        """Queue a served request's predictions for writing; returns at once."""
        if self._thread is None:
            raise RuntimeError("the prediction log is not running")
        with self._done:
            self._submitted += len(entry)
        self._queue.put(entry)

    @property
    def pending(self) -> int:
        """Rows submitted but not yet written (or given up on)."""
        return self._submitted - self._written - self._failed

    def backlogged(self) -> bool:
        """True when the writer is so far behind that new predictions should wait."""
        return self.pending > MAX_PENDING_ROWS

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted prediction is written (or failed); False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self.pending <= 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction log: %d rows still unwritten at shutdown", self.pending)
            self._thread = None
        if self._engine is not None:
            self._engine.dispose()

    def status(self) -> dict[str, Any]:
        """Rows written, waiting and failed, and the last write error."""
        with self._done:
            return {
                "written": self._written,
                "pending": self.pending,
                "failed": self._failed,
                "error": self._error,
            }

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            batch, rows = [item], len(item)
            while rows < self.max_rows_per_write:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                rows += len(item)
            self._write(batch, rows)

    def _insert(self, batch: list[LogEntry]) -> None:
        with self._engine.begin() as conn:  # type: ignore[union-attr]
            if self.fast_sqlite:
                marks = ", ".join("?" * len(INSERT_COLUMNS))
                sql = (
                    f"INSERT INTO {predictions.name} ({', '.join(INSERT_COLUMNS)}) VALUES ({marks})"
                )
                conn.exec_driver_sql(sql, [row for entry in batch for row in entry.sqlite_rows()])
            else:
                conn.execute(predictions.insert(), [row for entry in batch for row in entry.rows()])

    def _write(self, batch: list[LogEntry], rows: int) -> None:
        error = None
        for attempt in range(self.retries):
            try:
                self._insert(batch)
                error = None
                break
            except Exception as exc:  # noqa: BLE001 - keep serving; report the failure in /health
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                if attempt + 1 < self.retries:
                    time.sleep(0.2 * 4**attempt)
        with self._done:
            if error is None:
                self._written += rows
            else:
                self._failed += rows
                self._error = error
                log.error("prediction log: %d rows not written: %s", rows, error)
            self._done.notify_all()


def read_predictions(
    settings: Settings, since: datetime | None = None, last: int | None = None
) -> pd.DataFrame:
    """The prediction log as a table: a row per prediction, inputs and ``proba_<class>`` as columns.

    Columns: id, request_id, created_at (UTC), record_index, model_name, model_version, predicted,
    confidence, low_confidence, then one column per input field, then one per class probability.
    ``since`` keeps predictions made at or after that time; ``last`` keeps only the newest N.
    """
    url = settings.store
    parsed = sa.engine.make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database
        and not Path(parsed.database).exists()
    ):
        return pd.DataFrame(columns=BASE_COLUMNS)
    engine = make_engine(url)
    try:
        if not sa.inspect(engine).has_table(predictions.name):
            return pd.DataFrame(columns=BASE_COLUMNS)
        query = sa.select(predictions)
        if since is not None:
            since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
            query = query.where(predictions.c.created_at >= since)
        if last is not None:
            query = query.order_by(predictions.c.id.desc()).limit(last)
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
    finally:
        engine.dispose()
    rows.sort(key=lambda r: r["id"])
    base = pd.DataFrame([{k: r[k] for k in BASE_COLUMNS} for r in rows], columns=BASE_COLUMNS)
    base["created_at"] = pd.to_datetime(base["created_at"], utc=True)
    base["low_confidence"] = base["low_confidence"].astype(bool)
    inputs = pd.DataFrame([r["input"] for r in rows], index=base.index)
    inputs.columns = [f"input_{c}" if c in BASE_COLUMNS else c for c in inputs.columns]
    proba = pd.DataFrame([r["probabilities"] for r in rows], index=base.index)
    proba.columns = [PROBA_PREFIX + str(c) for c in proba.columns]
    return pd.concat([base, inputs, proba], axis=1)
