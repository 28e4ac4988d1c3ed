"""Operational metrics for Prometheus (``GET /metrics``), kept with the official Python client.

What a platform team graphs and alerts on, all named ``mlops_kit_…``:

    http_request_duration_seconds{endpoint,status}   histogram: requests and their latency
    predictions_total{model_version,class}           counter: every prediction served
    prediction_confidence{model_version}             histogram: the confidence of each prediction
    low_confidence_predictions_total{model_version}  counter: predictions flagged for review
    refused_requests_total{status,reason}            counter: requests the API refused
    prediction_log_backlog_rows                      gauge: rows accepted but not yet written

One process: the values live in the app's own registry, beside the process's CPU and memory.
Several workers (``mlops-kit serve --workers N``): prometheus_client's multiprocess mode. Each
worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (``serve`` sets it to a fresh
folder) and whichever worker answers /metrics adds up every worker's files. The client's limits in
that mode: no process CPU/memory metrics, no Info metric, and a gauge needs a rule for combining
workers (the backlog is the sum over the live workers).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter as Tally
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from mlops_kit.scoring.errors import BadRequest
from mlops_kit.store.predictions.entry import LogEntry
from mlops_kit.store.predictions.writer import PredictionLog

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format every Prometheus reads
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIDENCE_BUCKETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
# why a request without itemised problems was refused (itemised ones: the first problem's type)
REASONS = {
    400: "invalid_json",
    401: "unauthorized",
    403: "admin_disabled",
    413: "body_too_large",
    415: "not_json",
    422: "invalid_body",
}


def refusal_reason(exc: BadRequest) -> str:
    """A short name for why a request was refused: few distinct values, fit for a label."""
    if exc.problems:  # pydantic's kind of the first problem: missing, float_type, literal_error, …
        return str(exc.problems[0]["type"])
    if exc.status == 503:  # the backlog answer is the one that says when to retry
        return "log_backlog" if "Retry-After" in exc.headers else "no_model"
    return REASONS.get(exc.status, "other")


class ApiMetrics:
    """The API's metrics: recorded by the routes, sampled from the log, read by GET /metrics."""

    def __init__(self, low_confidence: float) -> None:
        self.multiprocess = MULTIPROCESS_DIR in os.environ
        own = CollectorRegistry()  # in multiprocess mode only the workers' files are read
        self.requests = Histogram(
            "mlops_kit_http_request_duration_seconds", "HTTP requests and their latency",
            ["endpoint", "status"], buckets=LATENCY_BUCKETS, registry=own,
        )  # fmt: skip
        self.predictions = Counter(
            "mlops_kit_predictions", "Predictions served",
            ["model_version", "class"], registry=own,
        )  # fmt: skip
        self.confidence = Histogram(
            "mlops_kit_prediction_confidence", "Confidence of each prediction served",
            ["model_version"], registry=own,
            buckets=sorted({*CONFIDENCE_BUCKETS, low_confidence}),
        )  # fmt: skip
        self.low_confidence = Counter(
            "mlops_kit_low_confidence_predictions",
            f"Predictions with confidence below {low_confidence} (flagged for review)",
            ["model_version"], registry=own,
        )  # fmt: skip
        self.refused = Counter(
            "mlops_kit_refused_requests", "Requests refused, by status and reason",
            ["status", "reason"], registry=own,
        )  # fmt: skip
        self.backlog = Gauge(
            "mlops_kit_prediction_log_backlog_rows",
            "Predictions accepted but not yet written to the log",
            multiprocess_mode="livesum", registry=own,
        )  # fmt: skip
        if self.multiprocess:
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry)
        else:
            self.registry = own
            ProcessCollector(registry=own)
        self._log: PredictionLog | None = None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    # --- what the routes record -------------------------------------------------------------

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """One HTTP request answered."""
        self.requests.labels(endpoint, str(status)).observe(seconds)

    def answered(self, entry: LogEntry) -> None:
        """The predictions of one answered request."""
        version = entry.model_version
        for predicted, count in Tally(entry.predicted).items():
            self.predictions.labels(version, predicted).inc(count)
        observe_many(self.confidence.labels(version), entry.confidence)
        if flagged := sum(entry.low_confidence):
            self.low_confidence.labels(version).inc(flagged)

    def refusal(self, exc: BadRequest, status: int | None = None) -> None:
        """One refused request (``status``: the one sent, where a route words it its own way)."""
        self.refused.labels(str(status or exc.status), refusal_reason(exc)).inc()

    # --- the log's backlog, sampled; the text Prometheus scrapes ----------------------------

    def start(self, log: PredictionLog, interval: float = 1.0) -> None:
        """Sample the log's backlog every ``interval`` seconds (a gauge cannot ask it when read)."""
        if self.multiprocess:
            forget_dead_workers(os.environ[MULTIPROCESS_DIR])
        self._log = log
        self._stop.clear()

        def sample() -> None:
            while not self._stop.wait(interval):
                self.backlog.set(log.pending)

        self._sampler = threading.Thread(target=sample, name="metrics-backlog", daemon=True)
        self._sampler.start()

    def stop(self) -> None:
        """Stop sampling; in multiprocess mode this worker's backlog stops counting."""
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(5)
            self._sampler = None
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (all workers' in multiprocess mode)."""
        if self._log is not None:
            self.backlog.set(self._log.pending)
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware: time every HTTP request and count it by endpoint (route) and status."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Pass the request on; when it is answered, record its route, status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500  # an exception answered by the server: 500

        async def send_noting_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # the route template (/predict), never the raw path: a label needs few values
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request(endpoint, status, time.perf_counter() - start)


def observe_many(histogram: Any, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, as a few bucket increments.

    A 10,000-record batch observed one by one costs 14 ms (36 ms in multiprocess mode, where every
    observation writes a file), as much as scoring it; counted with numpy first, 0.2 ms (0.4 ms).
    The client has no bulk call, so this fills the buckets ``Histogram.observe`` fills (the same
    text is scraped either way: tests/serving/test_metrics.py).
    """
    if len(values) <= 1:
        for value in values:
            histogram.observe(value)
        return
    array = np.asarray(values, dtype=np.float64)
    bounds = np.asarray(histogram._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, array, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(array.sum()))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)


def fresh_multiprocess_dir(path: Path) -> Path:
    """An empty folder for the workers' metric files (the client needs it wiped at each start)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def forget_dead_workers(path: str) -> None:
    """Drop the live gauges of workers that died without stopping (uvicorn restarts them)."""
    for file in Path(path).glob("gauge_live*_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, someone else's
