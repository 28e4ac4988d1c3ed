"""The log's writer: a queue in front of one thread that inserts served predictions in batches.

A request only puts its ``LogEntry`` on the queue and returns. The writer thread takes whatever is
queued (up to ``max_rows_per_write`` rows) and inserts it in one transaction. A write that fails
is tried again a few times, then its rows are counted as failed and the error is reported by
``status()`` (the API shows it in /health); serving goes on. While a database server cannot be
reached (PostgreSQL restarting, the network gone) nothing is given up: the writer keeps the rows
and tries again until the server is back, and the API answers 503 once the backlog is
``MAX_PENDING_ROWS`` rows long. Both kinds of retry are tenacity's.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import sqlalchemy as sa
import tenacity
from sqlalchemy.engine import Engine

from mlops_kit.store.db import create_tables, is_sqlite, make_engine
from mlops_kit.store.predictions import row_text
from mlops_kit.store.predictions.entry import LogEntry, predictions

log = logging.getLogger(__name__)

MAX_PENDING_ROWS = 200_000  # beyond this backlog /predict answers 503 instead of queueing more

_INSERT_COLUMNS = [c.name for c in predictions.columns if c.name != "id"]


def _sqlite_insert(table: sa.Table) -> str:
    columns = ", ".join(_INSERT_COLUMNS)
    return f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"


def _copy(table: sa.Table) -> str:
    return f"COPY {table.name} ({', '.join(_INSERT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


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
        table: sa.Table = predictions,  # or shadow_predictions: a shadow model's answers
    ) -> None:
        self.url = url
        self.table = table
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
        self._abandon = threading.Event()  # close() timed out: stop waiting for the database
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the table if needed (or add the columns an older one lacks); start the writer."""
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
                self._abandon.set()
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
                cursor.executemany(_sqlite_insert(self.table), rows)
                cursor.close()
            elif self.copy:
                with conn.connection.cursor() as cursor, cursor.copy(_copy(self.table)) as copy:
                    copy.set_types(row_text.COPY_TYPES)
                    for e in batch:
                        for row in row_text.copy_tuples(e):
                            copy.write_row(row)
            else:
                conn.execute(self.table.insert(), [row for e in batch for row in e.rows()])

    def _unreachable(self, exc: BaseException) -> bool:
        """True when a database server is down or restarting, rather than refusing these rows."""
        if is_sqlite(self.url):  # a file: its errors are not outages (behaviour kept as it was)
            return False
        dbapi = self._engine.dialect.loaded_dbapi  # type: ignore[union-attr]
        error = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        return isinstance(error, dbapi.OperationalError | dbapi.InterfaceError)

    def _insert_through_outages(self, batch: list[LogEntry]) -> None:
        """Insert a batch; while the server is out of reach, keep the rows and try again."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._unreachable),
            stop=tenacity.stop_when_event_set(self._abandon),
            wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),  # 0.1 s, 0.2 s … 2 s
            before_sleep=self._note_outage,
            reraise=True,
        )
        retrying(self._insert, batch)

    def _note_outage(self, attempt: tenacity.RetryCallState) -> None:
        """Report the outage in status(); log it when it begins."""
        error = _describe(attempt.outcome.exception())  # type: ignore[union-attr, arg-type]
        with self._done:
            began = self._outage is None
            self._outage = f"database unreachable, {self.pending} rows kept: {error}"
        if began:
            log.warning("prediction log: %s", self._outage)

    def _write(self, batch: list[LogEntry], rows: int) -> None:
        """Insert a batch, then count it written, or failed after `retries` attempts."""
        retrying = tenacity.Retrying(  # a write that fails (an outage is waited out inside)
            stop=tenacity.stop_after_attempt(self.retries)
            | tenacity.stop_when_event_set(self._abandon),
            wait=tenacity.wait_exponential(multiplier=0.2, exp_base=4),  # 0.2 s, 0.8 s …
            reraise=True,
        )
        try:
            retrying(self._insert_through_outages, batch)
            error = None
        except Exception as exc:  # noqa: BLE001 - keep serving; report the failure in /health
            error = _describe(exc)
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


def _describe(exc: BaseException) -> str:
    """An error as one short line: its type and the first line of its message."""
    first_line = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line[:300]}"
