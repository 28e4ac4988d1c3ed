"""Benchmark: the kit's API against `mlflow models serve` on the same champion (in-process floor).

Trains the default pipeline into a throw-away workspace, starts both servers on 127.0.0.1 and
measures, in one run: single-record latency (p50, p99) over keep-alive connections, throughput
with concurrent clients, and rows/s for 10,000-record batches: one batch at a time (the API's
prediction log idle at the start of each), and sustained (batches back to back, timed until the
log has written every row). Prints figures and the ratios the serving issue asks for; it is a
measurement, not a test.

    .venv/bin/python benchmarks/bench_api.py [--requests 1000] [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll GET path until it answers 200, the process dies, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server on port {port} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server process (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Target:
    """One HTTP endpoint and how to wrap records for it."""

    def __init__(self, name: str, port: int, path: str, wrap: Callable[[list[dict]], object]):
        self.name, self.port, self.path, self.wrap = name, port, path, wrap

    def connect(self) -> http.client.HTTPConnection:
        """A keep-alive connection."""
        return http.client.HTTPConnection(HOST, self.port, timeout=60)

    def post(self, conn: http.client.HTTPConnection, body: bytes) -> bytes:
        """POST a JSON body, return the response body (fails on non-200)."""
        conn.request("POST", self.path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status}: {data[:200]!r}")
        return data


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    return float(np.percentile(np.asarray(values), q))


def latency(target: Target, bodies: list[bytes], n: int) -> list[float]:
    """Sequential single-record requests on one keep-alive connection; seconds per request."""
    conn = target.connect()
    for body in bodies[:50]:  # warm-up
        target.post(conn, body)
    times = []
    for i in range(n):
        body = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        target.post(conn, body)
        times.append(time.perf_counter() - t0)
    conn.close()
    return times


def throughput(target: Target, bodies: list[bytes], clients: int, seconds: float) -> float:
    """Requests per second with `clients` concurrent keep-alive connections for `seconds`."""
    counts = [0] * clients
    deadline = time.perf_counter() + seconds
    errors: list[BaseException] = []

    def run(k: int) -> None:
        conn = target.connect()
        i = k
        try:
            while time.perf_counter() < deadline:
                target.post(conn, bodies[i % len(bodies)])
                counts[k] += 1
                i += clients
        except BaseException as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{target.name}: {errors[0]}")
    return sum(counts) / elapsed


def batch_rows_per_s(
    runs: dict[str, Callable[[], object]], settle: dict[str, Callable[[], None]], rounds: int
) -> dict[str, float]:
    """Rows per second of one 10k-record batch for each way of scoring it (median of `rounds`).

    The ways take turns within each round, so a slow spell of this shared machine hits them
    alike. `settle` runs untimed before a way's turn: for the API it waits until the prediction
    log has written the previous batch, so each turn measures one batch, not the last one's log.
    """
    for run in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            settle.get(name, _nothing)()
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: 10_000 / statistics.median(spent) for name, spent in times.items()}


def sustained_rows_per_s(
    target: Target, body: bytes, rows: int, requests: int, settle: Callable[[], None]
) -> float:
    """Rows per second for `requests` batches sent back to back, until all of them are logged."""
    conn = target.connect()
    settle()
    t0 = time.perf_counter()
    for _ in range(requests):
        target.post(conn, body)
    settle()
    elapsed = time.perf_counter() - t0
    conn.close()
    return rows * requests / elapsed


def log_settled(port: int, timeout: float = 120.0) -> Callable[[], None]:
    """A function that waits until the API on `port` has no prediction-log rows pending."""

    def wait() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn.request("GET", "/health")
            if json.loads(conn.getresponse().read())["prediction_log"]["pending"] == 0:
                conn.close()
                return
            time.sleep(0.005)
        raise RuntimeError(f"the prediction log still has rows pending after {timeout:.0f} s")

    return wait


def _nothing() -> None:
    """Nothing to wait for (mlflow models serve keeps no log)."""


def in_process(model: object, frame: object, n: int) -> list[float]:
    """Single-record predict latencies of a model called in this process."""
    for _ in range(50):
        model.predict(frame)  # type: ignore[attr-defined]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        model.predict(frame)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
    return times


class _Handler:
    """The API's request handler called directly: validate, score, render; HTTP adds the rest."""

    def __init__(self, settings: Any, records: list[dict], batch: list[dict]) -> None:
        from mlops_kit.serving.loader import ChampionLoader

        loader = ChampionLoader(settings.model_copy(update={"reload_interval": 0}))
        loader.start()
        self.champion = loader.current
        self.bodies = {1: json.dumps(records[0]).encode(), 2: json.dumps(batch).encode()}

    def predict(self, which: int) -> object:
        from mlops_kit.serving.predict import handle

        return handle(self.bodies[which], self.champion, "bench", 0.7)


def main() -> None:
    """Train, start both servers, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=1000, help="single-record requests per server"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="duration of each throughput run"
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent connections for throughput"
    )
    parser.add_argument(
        "--batch-rounds", type=int, default=9, help="10k-record batches per server, in turns"
    )
    parser.add_argument(
        "--sustained", type=int, default=15, help="10k-record batches sent back to back"
    )
    parser.add_argument("--keep", action="store_true", help="keep the workspace and server logs")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_KIT_", "MLFLOW_"))}
    env.update(
        MLOPS_KIT_WORKSPACE=str(workdir / "workspace"), MLOPS_KIT_RUNS_DIR=str(workdir / "runs")
    )
    os.environ.clear()
    os.environ.update(env)

    import mlflow
    import pandas as pd

    from mlops_kit.config import get_settings
    from mlops_kit.model import predict_with_confidence
    from mlops_kit.training_pipeline import run_training_pipeline

    settings = get_settings()
    print(f"training the default pipeline into {workdir} ...", flush=True)
    result = run_training_pipeline(settings)
    name, version = settings.model_name, result.decision.champion_version
    model_uri = f"models:/{name}@champion"
    records = result.prepared.X_eval.dropna().to_dict("records")
    batch_records = [records[i % len(records)] for i in range(10_000)]

    api_port, mlflow_port = free_port(), free_port()
    server_env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    api_log = open(workdir / "api.log", "w")  # noqa: SIM115 - closed at the end
    api = subprocess.Popen(
        [str(BIN / "python"), "-m", "mlops_kit", "serve", "--port", str(api_port)],
        env=server_env, stdout=api_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    mlflow_log = open(workdir / "mlflow-serve.log", "w")  # noqa: SIM115
    mlflow_env = {**server_env, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    served = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
         "-p", str(mlflow_port), "-h", HOST],
        env=mlflow_env, stdout=mlflow_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready(api_port, "/health", api)
        wait_ready(mlflow_port, "/ping", served)
        ours = Target(
            "mlops-kit API", api_port, "/predict", lambda rs: rs if len(rs) > 1 else rs[0]
        )
        theirs = Target(
            "mlflow models serve", mlflow_port, "/invocations", lambda rs: {"dataframe_records": rs}
        )
        columns = Target(
            "mlops-kit API, column-wise batch",
            api_port,
            "/predict/columns",
            lambda rs: {name: [r.get(name) for r in rs] for name in rs[0]},
        )
        targets = [ours, theirs]
        batch_targets = [ours, columns, theirs]

        print(
            f"measuring {name} v{version} ({result.best.name}); {os.cpu_count()} CPU cores",
            flush=True,
        )
        single = {t.name: [json.dumps(t.wrap([r])).encode() for r in records] for t in targets}
        batch = {t.name: json.dumps(t.wrap(batch_records)).encode() for t in batch_targets}

        lat: dict[str, list[float]] = {t.name: [] for t in targets}
        rounds = 4  # interleave the servers so that background load hits both alike
        for _ in range(rounds):
            for t in targets:
                lat[t.name] += latency(t, single[t.name], args.requests // rounds)
        rps = {t.name: throughput(t, single[t.name], args.clients, args.seconds) for t in targets}
        loaded = mlflow.pyfunc.load_model(model_uri)
        pipeline = loaded.unwrap_python_model().pipeline

        class _Raw:
            def predict(self, df: pd.DataFrame) -> object:
                return predict_with_confidence(pipeline, df)

        frame = pd.DataFrame(records[:1])
        big = pd.DataFrame(batch_records)
        handler = _Handler(settings, records, batch_records)
        floor_name, raw_name = "in-process pyfunc predict (floor)", "in-process sklearn pipeline"
        handler_name = "in-process API handler (no HTTP, no log)"
        floor_lat = in_process(loaded, frame, args.requests)
        raw_lat = in_process(_Raw(), frame, args.requests)
        handler_lat = in_process(handler, 1, args.requests)

        settle = {ours.name: log_settled(api_port), columns.name: log_settled(api_port)}
        connections = {t.name: t.connect() for t in batch_targets}
        runs: dict[str, Callable[[], object]] = {
            t.name: functools.partial(t.post, connections[t.name], batch[t.name])
            for t in batch_targets
        }
        runs.update(
            {
                floor_name: functools.partial(loaded.predict, big),
                raw_name: functools.partial(_Raw().predict, big),
                handler_name: functools.partial(handler.predict, 2),
            }
        )
        rows = batch_rows_per_s(runs, settle, args.batch_rounds)
        for conn in connections.values():
            conn.close()
        sustained = {
            t.name: sustained_rows_per_s(
                t, batch[t.name], 10_000, args.sustained, settle.get(t.name, _nothing)
            )
            for t in batch_targets
        }
        conn = http.client.HTTPConnection(HOST, api_port, timeout=10)
        conn.request("GET", "/model")
        scoring = json.loads(conn.getresponse().read())["scoring"]
        conn.request("GET", "/health")
        log_status = json.loads(conn.getresponse().read())["prediction_log"]
        conn.close()
    finally:
        stop(api)
        stop(served)
        api_log.close()
        mlflow_log.close()

    def line(
        label: str, times: list[float] | None, rps: float | None, rows: float, held: float | None
    ) -> None:
        p50 = f"{percentile(times, 50) * 1e3:9.2f}" if times else " " * 9
        p99 = f"{percentile(times, 99) * 1e3:9.2f}" if times else " " * 9
        per_s = f"{rps:10.0f}" if rps else " " * 10
        kept = f"{held:14.0f}" if held else ""
        print(f"{label:42s}{p50}{p99}{per_s}{rows:13.0f}{kept}")

    print()
    print(
        f"{'':42s}{'p50 ms':>9s}{'p99 ms':>9s}{'req/s':>10s}{'10k rows/s':>13s}{'sustained':>14s}"
    )
    for t in batch_targets:
        line(t.name, lat.get(t.name), rps.get(t.name), rows[t.name], sustained[t.name])
    for label, times in ((floor_name, floor_lat), (raw_name, raw_lat), (handler_name, handler_lat)):
        line(label, times, None, rows[label], None)
    print()
    p50_ratio = percentile(lat[theirs.name], 50) / percentile(lat[ours.name], 50)
    rps_ratio = rps[ours.name] / rps[theirs.name]
    p99 = percentile(lat[ours.name], 99) * 1e3
    floor_rows = rows[floor_name]
    batch_ratio = rows[ours.name] / floor_rows
    print(f"API scoring path: {scoring}; throughput with {args.clients} concurrent clients")
    print(f"p50 latency, mlflow serve / API      {p50_ratio:5.2f}x  (target >= 2)")
    print(f"throughput, API / mlflow serve       {rps_ratio:5.2f}x  (target >= 2)")
    print(f"API p99, one record                  {p99:5.2f} ms (target < 10)")
    columns_ratio = rows[columns.name] / floor_rows
    print(f"10k batch rows/s, API / in-process   {batch_ratio:5.2f}   (target >= 0.5)")
    print(f"  the same, column-wise batch        {columns_ratio:5.2f}")
    print(
        f"sustained: {args.sustained} batches back to back, timed until all "
        f"{args.sustained * 10_000} rows are in the prediction log:"
    )
    for t in (ours, columns):
        held = sustained[t.name]
        print(f"  {t.name:34s} {held:8.0f} rows/s, {held / floor_rows:.2f} of in-process")
    print(f"prediction log at the end: {log_status}")
    if args.keep:
        print(f"workspace and server logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
