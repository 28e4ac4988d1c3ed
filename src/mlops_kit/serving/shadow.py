"""The challenger in shadow: it scores every answered request off the request path, never answers.

    request ──answer──▶ client
       └─ submit(entry) ──▶ queue ──▶ one shadow thread: the shadow alias' model scores the same
                                      validated records ──▶ shadow_predictions, beside the log

``mlops-kit serve --shadow challenger``: the answers come from the served alias as always; the
shadow alias (followed as it moves, like the served one) scores what the request sent, and its
answers go to the store's ``shadow_predictions`` table with its version, keyed by request id and
position, so ``mlops-kit compare`` can set the two side by side. The shadow never delays or fails
a request: a queue too long drops work (counted in /health), a model that cannot score these
records is skipped (counted too).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import numpy as np

from mlops_kit.config import Settings
from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.inputs import Parsed
from mlops_kit.scoring.loader import ChampionLoader
from mlops_kit.scoring.score import score
from mlops_kit.store.predictions.entry import LogEntry, shadow_predictions
from mlops_kit.store.predictions.writer import PredictionLog

log = logging.getLogger(__name__)

MAX_QUEUED_ROWS = 100_000  # beyond this the shadow drops work rather than hold memory
# The shadow waits this long after a request for more to score with it: one scoring call and one
# log write for several requests. benchmarks/bench_shadow.py, one-record requests one after the
# other, p50 with a shadow / without, same run: scoring each request at once 1.44-1.57; gathering
# 0.05 s 1.06-1.11; 0.2 s 0.90-0.94 (within the noise of two API processes side by side).
GATHER_SECONDS = 0.2
_STOP = object()


def _joined(parts: list[Any]) -> Any:
    """One input column of several requests, end to end (arrays stay arrays)."""
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts)
    return [value for part in parts for value in part]


class Shadow:
    """A second model that scores the served requests in the background and logs its answers."""

    def __init__(self, settings: Settings) -> None:
        self.alias = settings.shadow_alias or ""
        self.threshold = settings.low_confidence
        self.loader = ChampionLoader(settings, self.alias)
        self.log = PredictionLog(settings.store, table=shadow_predictions)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._queued = 0  # rows waiting for the shadow (under _lock: two threads change it)
        self._lock = threading.Lock()
        self.counts = {"scored": 0, "skipped": 0, "dropped": 0}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start its log writer, load the shadow alias' model, start scoring."""
        self.log.start()
        self.loader.start()
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def submit(self, entry: LogEntry) -> None:
        """Queue an answered request for the shadow; returns at once (drops it when far behind)."""
        with self._lock:
            if self._queued + len(entry) > MAX_QUEUED_ROWS:
                self.counts["dropped"] += len(entry)
                return
            self._queued += len(entry)
        self._queue.put(entry)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            # gather what arrives for a moment: one scoring call and one log write for several
            # requests, so the shadow takes the interpreter less often from the requests
            time.sleep(GATHER_SECONDS)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is _STOP for item in batch)
            entries = [item for item in batch if item is not _STOP]
            if not entries:
                continue
            try:
                self._score(entries)
            except Exception:  # noqa: BLE001 - the shadow must never take the API down
                log.exception("shadow: %d request(s) not scored", len(entries))
                self.counts["skipped"] += sum(map(len, entries))
            finally:
                with self._lock:
                    self._queued -= sum(map(len, entries))

    def _score(self, entries: list[LogEntry]) -> None:
        model = self.loader.current
        rows = sum(map(len, entries))
        names = set(model.inputs.names) if model else set()
        if model is None or any(names - set(e.inputs) for e in entries):
            self.counts["skipped"] += rows  # no shadow model, or it needs other inputs
            return
        columns = {name: _joined([e.inputs[name] for e in entries]) for name in names}
        try:
            scores = score(model, Parsed(columns, rows, batch=True), self.threshold)
        except BadRequest:  # values it cannot score (its probabilities are not finite)
            self.counts["skipped"] += rows
            return
        start = 0
        for e in entries:  # each request's answers, keyed as the served ones are
            part = slice(start, start + len(e))
            start += len(e)
            self.log.submit(
                LogEntry(
                    request_id=e.request_id,
                    created_at=e.created_at,
                    model_name=model.name,
                    model_version=model.version,
                    inputs=e.inputs,
                    predicted=scores.predicted[part],
                    confidence=scores.confidence[part].tolist(),
                    probabilities=scores.probabilities[part],
                    classes=model.classes,
                    low_confidence=scores.low_confidence[part].tolist(),
                    low_confidence_threshold=self.threshold,
                    record_keys=e.record_keys,
                    source=e.source,
                )
            )
        self.counts["scored"] += rows

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued request is scored and written (False: not in time)."""
        deadline = time.monotonic() + timeout
        while self._queued > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return self.log.flush(max(0.0, deadline - time.monotonic()))

    def status(self) -> dict[str, Any]:
        """The shadow's alias and version, what it scored, skipped and dropped, its log."""
        model = self.loader.current
        return {
            "alias": self.alias,
            "model_version": model.version if model else None,
            "queued_rows": self._queued,
            **self.counts,
            "log": self.log.status(),
        }

    def stop(self) -> None:
        """Score what is queued, then stop the thread, the loader and the log."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(15.0)
            self._thread = None
        self.loader.stop()
        self.log.close()
