"""The prediction log: every served prediction, written off the request path to a SQL database.

    request ──submit(entry)──▶ queue ──▶ one writer thread ──▶ INSERT … (one transaction per batch)

A request only puts one ``LogEntry`` (its records and the model's answers) on a queue and returns.
A single writer thread takes whatever is queued (up to ``max_rows_per_write`` rows), turns each
record into a table row (its input and probabilities as JSON objects) and inserts the batch in one
transaction. One writer means no lost or interleaved rows however many requests arrive at once;
the queue means a slow disk never delays a response. A failed write is retried, then counted and
reported by ``status()`` (the API shows it in /health); serving goes on. When a database server
cannot be reached (PostgreSQL restarting, the network gone) nothing is given up: the writer keeps
the rows and tries again until the server is back, and the API answers 503 once the backlog is
``MAX_PENDING_ROWS`` rows long.

The database is the store's (``store.db``): SQLite in the workspace by default, in WAL mode so
readers such as the monitoring notebook never block the writer, or any SQLAlchemy URL (e.g.
``postgresql+psycopg://…``) through ``MLOPS_KIT_STORE_URL``. ``read_predictions`` reads the log
back as a table, by time window (``since``) or the newest N (``last``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlops_kit.config import Settings
from mlops_kit.model import PROBA_PREFIX
from mlops_kit.store import row_text
from mlops_kit.store.db import create_tables, exists, is_sqlite, make_engine, metadata

log = logging.getLogger(__name__)

predictions = sa.Table(
    "predictions",
    metadata,
    # 64-bit on a server (a team's log outgrows 2^31 rows); SQLite's rowid is 64-bit already
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),  # UTC
    sa.Column("record_index", sa.Integer, nullable=False),  # position in the request's batch
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("input", sa.JSON, nullable=False),  # the record as validated; absent fields: null
    sa.Column("predicted", sa.String(200), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("probabilities", sa.JSON, nullable=False),  # {class: probability}
    sa.Column("low_confidence", sa.Boolean, nullable=False),
)
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
        inputs = {name: [_missing_as_none(r.get(name)) for r in records] for name in names}
        matrix = np.asarray(probabilities, dtype=np.float64).reshape(len(records), len(classes))
        return cls(
            request_id, created_at, model_name, model_version, inputs,
            list(predicted), list(confidence), matrix, list(classes), list(low_confidence),
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
            self.probability_records(), self.low_confidence,
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
            }
            for i, (record, predicted, confidence, proba, low) in enumerate(answers)
        ]


def _missing_as_none(value: Any) -> Any:
    """None for a missing value (None or NaN), else the value."""
    return None if value is None or (isinstance(value, float) and value != value) else value


_INSERT_COLUMNS = [c.name for c in predictions.columns if c.name != "id"]
_SQLITE_INSERT = (
    f"INSERT INTO {predictions.name} ({', '.join(_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"
)
_COPY = f"COPY {predictions.name} ({', '.join(_INSERT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


_STOP = object()


class PredictionLog:
    """A queue in front of one writer thread that inserts served predictions in batches."""

    def __init__(
        self,
        url: str,
        # a writer that is behind takes this many rows at most in one transaction: one commit (a
        # disk flush) for several requests. PostgreSQL, 20 queued 10k-row entries, same run:
        # 150-167k rows/s with 5,000 (one request per commit), 194-224k with 50,000.
        max_rows_per_write: int = 50_000,
        retries: int = 3,
        fast_sqlite: bool = True,
        copy: bool = True,
    ) -> None:
        self.url = url
        self.max_rows_per_write = max_rows_per_write
        self.retries = retries
        # The fast paths (row_text.py) store the same values as SQLAlchemy's insert of rows()
        # (tested) for much less CPU, which requests need too (one GIL). `bench_api.py --writer`,
        # 10k-row entries, 2 cores, rows/s: SQLite 156-179k through sqlite3, 50k through
        # SQLAlchemy; PostgreSQL 148-154k with binary COPY, 28k with executemany.
        self.fast_sqlite = fast_sqlite and is_sqlite(url)
        self.copy = copy and sa.engine.make_url(url).drivername == "postgresql+psycopg"
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._submitted = 0
        self._written = 0
        self._failed = 0
        self._error: str | None = None  # the last write whose rows were given up
        self._outage: str | None = None  # set while the database cannot be reached
        self._abandon = False  # close() timed out: stop waiting for the database
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the table if needed and start the writer thread."""
        self._engine = make_engine(self.url)
        create_tables(self._engine)
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
                self._abandon = True
                log.error("prediction log: %d rows still unwritten at shutdown", self.pending)
            self._thread = None
        if self._engine is not None:
            self._engine.dispose()

    def status(self) -> dict[str, Any]:
        """Rows written, waiting and failed, and the error: the database out of reach, or else
        the last write that was given up."""
        with self._done:
            return {
                "written": self._written,
                "pending": self.pending,
                "failed": self._failed,
                "error": self._outage or self._error,
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
            # rows made one by one as the driver takes them (row_text.py): none pile up
            if self.fast_sqlite:
                cursor = conn.connection.cursor()
                rows = (t for e in batch for t in row_text.sqlite_tuples(e))
                cursor.executemany(_SQLITE_INSERT, rows)
                cursor.close()
            elif self.copy:
                with conn.connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                    copy.set_types(row_text.COPY_TYPES)
                    for e in batch:
                        for row in row_text.copy_tuples(e):
                            copy.write_row(row)
            else:
                conn.execute(predictions.insert(), [row for e in batch for row in e.rows()])

    def _unreachable(self, exc: Exception) -> bool:
        """True when a database server is down or restarting, rather than refusing these rows."""
        if is_sqlite(self.url):  # a file: its errors are not outages (behaviour kept as it was)
            return False
        dbapi = self._engine.dialect.loaded_dbapi  # type: ignore[union-attr]
        error = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        return isinstance(error, dbapi.OperationalError | dbapi.InterfaceError)

    def _write(self, batch: list[LogEntry], rows: int) -> None:
        error, attempt, waited = None, 0, 0
        while True:
            try:
                self._insert(batch)
                error = None
                break
            except Exception as exc:  # noqa: BLE001 - keep serving; report the failure in /health
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                if self._unreachable(exc) and not self._abandon:  # keep the rows; try again
                    with self._done:
                        self._outage = f"database unreachable, {self.pending} rows kept: {error}"
                    if waited == 0:
                        log.warning("prediction log: %s", self._outage)
                    time.sleep(min(2.0, 0.1 * 2**waited))
                    waited += 1
                    continue
                attempt += 1
                if attempt >= self.retries or self._abandon:
                    break
                time.sleep(0.2 * 4 ** (attempt - 1))
        with self._done:
            if error is None:
                self._written += rows
                if self._outage:
                    log.warning("prediction log: database back, %d kept rows written", rows)
                self._outage = None
            else:
                self._failed += rows
                self._error = error
                log.error("prediction log: %d rows not written: %s", rows, error)
            self._done.notify_all()


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _aware(stored: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives it back without its zone)."""
    return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


def _frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Stored rows as the log's table: base columns, one per input field, ``proba_<class>``."""
    rows = sorted(rows, key=lambda row: row["id"])  # in log order
    base = pd.DataFrame([{k: r[k] for k in BASE_COLUMNS} for r in rows], columns=BASE_COLUMNS)
    base["created_at"] = pd.to_datetime(base["created_at"], utc=True)
    base["low_confidence"] = base["low_confidence"].astype(bool)
    inputs = pd.DataFrame([r["input"] for r in rows], index=base.index)
    inputs.columns = [f"input_{c}" if c in BASE_COLUMNS else c for c in inputs.columns]
    proba = pd.DataFrame([r["probabilities"] for r in rows], index=base.index)
    proba.columns = [PROBA_PREFIX + str(c) for c in proba.columns]
    return pd.concat([base, inputs, proba], axis=1)


def read_predictions(
    settings: Settings, since: datetime | None = None, last: int | None = None
) -> pd.DataFrame:
    """The prediction log as a table: a row per prediction, inputs and ``proba_<class>`` as columns.

    Columns: id, request_id, created_at (UTC), record_index, model_name, model_version, predicted,
    confidence, low_confidence, then one column per input field, then one per class probability.
    ``since`` keeps predictions made at or after that time; ``last`` keeps only the newest N.
    The database does the choosing: only the rows returned are read. For a window too long to
    hold in memory, read it through ``LogWindow``.
    """
    if not exists(settings.store):
        return pd.DataFrame(columns=BASE_COLUMNS)
    query = sa.select(predictions)
    if since is not None:  # on the created_at index
        query = query.where(predictions.c.created_at >= _utc(since))
    if last is not None:
        query = query.order_by(predictions.c.id.desc()).limit(last)
    engine = make_engine(settings.store)
    try:
        if not sa.inspect(engine).has_table(predictions.name):
            return pd.DataFrame(columns=BASE_COLUMNS)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
    finally:
        engine.dispose()
    # sorted in Python, as ORDER BY id would lead SQLite past the created_at index
    return _frame(rows)


# --- a window of the log, read by SQL: counts and sums in the database, rows a bounded few ---


@dataclass(frozen=True)
class Span:
    """A stretch of a window: ids in [first_id, end_id) and times in [start, end); None is open."""

    first_id: int | None = None
    end_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None

    def conditions(self) -> list[Any]:
        """The stretch as SQL conditions on the predictions table."""
        c, out = predictions.c, []
        if self.first_id is not None:
            out.append(c.id >= self.first_id)
        if self.end_id is not None:
            out.append(c.id < self.end_id)
        if self.start is not None:
            out.append(c.created_at >= _utc(self.start))
        if self.end is not None:
            out.append(c.created_at < _utc(self.end))
        return out


WHOLE = Span()


@dataclass
class Totals:
    """Exact figures of a stretch of the log, summed by the database."""

    predictions: int
    confidence_sum: float
    low_confidence: int
    first_id: int | None
    last_id: int | None
    start: datetime | None
    versions: dict[str, int]  # predictions per model version


class LogWindow:
    """A window of the prediction log (made since a time, the newest N) read by SQL.

    Counts, sums and boundaries come from the database; rows come back only for a bounded
    sample (``rows(every=k)``) or chunk by chunk (``chunks``), so the memory a reader needs does
    not grow with the log. Use it as a context manager (it holds one engine).
    """

    def __init__(
        self, settings: Settings, since: datetime | None = None, last: int | None = None
    ) -> None:
        self.url = settings.store
        self.since = since
        self.last = last
        self._engine: Engine | None = None
        self._window: list[Any] = []

    def __enter__(self) -> LogWindow:
        if not exists(self.url):
            return self
        engine = make_engine(self.url)
        if not sa.inspect(engine).has_table(predictions.name):
            engine.dispose()
            return self
        self._engine = engine
        if self.since is not None:
            self._window.append(predictions.c.created_at >= _utc(self.since))
        if self.last is not None:  # the id where the newest `last` predictions begin
            first = self._scalar(
                sa.select(predictions.c.id)
                .where(*self._window)
                .order_by(predictions.c.id.desc())
                .limit(1)
                .offset(max(self.last - 1, 0))
            )
            if first is not None:
                self._window.append(predictions.c.id >= first)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def has_table(self, name: str) -> bool:
        """True when the store's database has that table."""
        return self._engine is not None and sa.inspect(self._engine).has_table(name)

    def _scalar(self, query: Any) -> Any:
        with self._engine.connect() as conn:  # type: ignore[union-attr]
            return conn.execute(query).scalar()

    def _where(self, span: Span) -> list[Any]:
        return [*self._window, *span.conditions()]

    def count(self, span: Span = WHOLE) -> int:
        """Predictions in the window (or a stretch of it)."""
        if self._engine is None:
            return 0
        query = sa.select(sa.func.count()).select_from(predictions).where(*self._where(span))
        return int(self._scalar(query) or 0)

    def ids_every(self, size: int, span: Span = WHOLE) -> list[int]:
        """The id of every `size`-th prediction, from the first: where runs of `size` begin."""
        if self._engine is None:
            return []
        number = sa.func.row_number().over(order_by=predictions.c.id).label("number")
        ranked = sa.select(predictions.c.id, number).where(*self._where(span)).subquery()
        query = sa.select(ranked.c.id).where((ranked.c.number - 1) % size == 0)
        with self._engine.connect() as conn:
            return sorted(int(i) for i in conn.execute(query).scalars())

    def id_from_end(self, n: int, span: Span = WHOLE) -> int | None:
        """The id where the newest `n` predictions of the window begin."""
        if self._engine is None or n < 1:
            return None
        return self._scalar(
            sa.select(predictions.c.id)
            .where(*self._where(span))
            .order_by(predictions.c.id.desc())
            .limit(1)
            .offset(n - 1)
        )

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The first and last prediction times of the window (UTC), None when it is empty."""
        if self._engine is None:
            return None
        c = predictions.c
        with self._engine.connect() as conn:
            low, high = conn.execute(
                sa.select(sa.func.min(c.created_at), sa.func.max(c.created_at)).where(*self._window)
            ).one()
        if low is None:
            return None
        return _aware(low), _aware(high)

    def totals(self, span: Span = WHOLE) -> Totals:
        """Count, confidence sum, low-confidence count, first/last id, start and versions."""
        c = predictions.c
        query = (
            sa.select(
                c.model_version,
                sa.func.count(),
                sa.func.sum(c.confidence),
                sa.func.sum(sa.cast(c.low_confidence, sa.Integer)),
                sa.func.min(c.id),
                sa.func.max(c.id),
                sa.func.min(c.created_at),
            )
            .where(*self._where(span))
            .group_by(c.model_version)
        )
        groups = []
        if self._engine is not None:
            with self._engine.connect() as conn:
                groups = conn.execute(query).all()
        starts = [g[6] for g in groups]
        return Totals(
            predictions=sum(int(g[1]) for g in groups),
            confidence_sum=sum(float(g[2] or 0) for g in groups),
            low_confidence=sum(int(g[3] or 0) for g in groups),
            first_id=min((int(g[4]) for g in groups), default=None),
            last_id=max((int(g[5]) for g in groups), default=None),
            start=_aware(min(_aware(s) for s in starts)) if starts else None,
            versions={str(g[0]): int(g[1]) for g in groups},
        )

    def class_counts(self, span: Span = WHOLE) -> dict[str, int]:
        """Predictions per predicted class."""
        if self._engine is None:
            return {}
        c = predictions.c
        query = sa.select(c.predicted, sa.func.count()).where(*self._where(span))
        with self._engine.connect() as conn:
            return {str(k): int(n) for k, n in conn.execute(query.group_by(c.predicted))}

    def rows(self, span: Span = WHOLE, every: int = 1) -> pd.DataFrame:
        """The stretch's predictions as ``read_predictions`` gives them; every k-th one if asked."""
        if self._engine is None:
            return pd.DataFrame(columns=BASE_COLUMNS)
        query = sa.select(predictions).where(*self._where(span))
        if every > 1:  # a systematic sample: the 1st, (k+1)th, (2k+1)th ... prediction
            number = sa.func.row_number().over(order_by=predictions.c.id).label("number")
            ranked = sa.select(predictions.c.id, number).where(*self._where(span)).subquery()
            chosen = sa.select(ranked.c.id).where((ranked.c.number - 1) % every == 0)
            query = sa.select(predictions).where(predictions.c.id.in_(chosen))
        with self._engine.connect() as conn:
            return _frame(conn.execute(query).mappings().all())

    def chunks(self, *conditions: Any, size: int = 10_000) -> Iterator[pd.DataFrame]:
        """The window's predictions that meet `conditions`, in log order, `size` rows at a time."""
        if self._engine is None:
            return
        after = None
        while True:
            query = sa.select(predictions).where(*self._window, *conditions)
            if after is not None:
                query = query.where(predictions.c.id > after)
            query = query.order_by(predictions.c.id).limit(size)
            with self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
            if not rows:
                return
            yield _frame(rows)
            after = rows[-1]["id"]
