"""Benchmark: the kit's API against `mlflow models serve` on the same champion (in-process floor).

Trains the default pipeline into a throw-away workspace, starts both servers on 127.0.0.1 and
measures, in one run: single-record latency (p50, p99) over keep-alive connections, throughput
with concurrent clients, and rows/s for a 10,000-record batch. Prints figures and the ratios the
serving issue asks for; it is a measurement, not a test.

    .venv/bin/python benchmarks/bench_api.py [--requests 1000] [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
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


def batch_rows_per_s(target: Target, body: bytes, rows: int, rounds: int) -> float:
    """Rows per second for one batch request (median of `rounds` sequential requests)."""
    conn = target.connect()
    target.post(conn, body)  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        target.post(conn, body)
        times.append(time.perf_counter() - t0)
    conn.close()
    return rows / statistics.median(times)


def in_process(model: object, frame: object, batch: object, n: int) -> tuple[list[float], float]:
    """Single-record predict latencies and 10k-batch rows/s of a model called in this process."""
    for _ in range(50):
        model.predict(frame)  # type: ignore[attr-defined]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        model.predict(frame)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
    batch_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        model.predict(batch)  # type: ignore[attr-defined]
        batch_times.append(time.perf_counter() - t0)
    return times, 10_000 / statistics.median(batch_times)


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
    parser.add_argument("--batch-rounds", type=int, default=5, help="10k-record batches per server")
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
    from mlops_kit.workflow import run_training_pipeline

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
        targets = [ours, theirs]

        print(
            f"measuring {name} v{version} ({result.best.name}); {os.cpu_count()} CPU cores",
            flush=True,
        )
        single = {t.name: [json.dumps(t.wrap([r])).encode() for r in records] for t in targets}
        batch = {t.name: json.dumps(t.wrap(batch_records)).encode() for t in targets}

        lat: dict[str, list[float]] = {t.name: [] for t in targets}
        rounds = 4  # interleave the servers so that background load hits both alike
        for _ in range(rounds):
            for t in targets:
                lat[t.name] += latency(t, single[t.name], args.requests // rounds)
        rps = {t.name: throughput(t, single[t.name], args.clients, args.seconds) for t in targets}
        rows = {
            t.name: batch_rows_per_s(t, batch[t.name], 10_000, args.batch_rounds) for t in targets
        }

        loaded = mlflow.pyfunc.load_model(model_uri)
        frame = pd.DataFrame(records[:1])
        big = pd.DataFrame(batch_records)
        floor_lat, floor_rows = in_process(loaded, frame, big, args.requests)
        pipeline = loaded.unwrap_python_model().pipeline

        class _Raw:
            def predict(self, df: pd.DataFrame) -> object:
                return predict_with_confidence(pipeline, df)

        raw_lat, raw_rows = in_process(_Raw(), frame, big, args.requests)
        handler_lat, handler_rows = in_process(
            _Handler(settings, records, batch_records), 1, 2, args.requests
        )
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

    def line(label: str, times: list[float] | None, rps: float | None, rows: float) -> None:
        p50 = f"{percentile(times, 50) * 1e3:9.2f}" if times else " " * 9
        p99 = f"{percentile(times, 99) * 1e3:9.2f}" if times else " " * 9
        per_s = f"{rps:10.0f}" if rps else " " * 10
        print(f"{label:42s}{p50}{p99}{per_s}{rows:13.0f}")

    print()
    print(f"{'':42s}{'p50 ms':>9s}{'p99 ms':>9s}{'req/s':>10s}{'10k rows/s':>13s}")
    for t in targets:
        line(t.name, lat[t.name], rps[t.name], rows[t.name])
    line("in-process pyfunc predict (floor)", floor_lat, None, floor_rows)
    line("in-process sklearn pipeline", raw_lat, None, raw_rows)
    line("in-process API handler (no HTTP, no log)", handler_lat, None, handler_rows)
    print()
    p50_ratio = percentile(lat[theirs.name], 50) / percentile(lat[ours.name], 50)
    rps_ratio = rps[ours.name] / rps[theirs.name]
    p99 = percentile(lat[ours.name], 99) * 1e3
    batch_ratio = rows[ours.name] / floor_rows
    print(f"API scoring path: {scoring}; throughput with {args.clients} concurrent clients")
    print(f"p50 latency, mlflow serve / API      {p50_ratio:5.2f}x  (target >= 2)")
    print(f"throughput, API / mlflow serve       {rps_ratio:5.2f}x  (target >= 2)")
    print(f"API p99, one record                  {p99:5.2f} ms (target < 10)")
    print(f"10k batch rows/s, API / in-process   {batch_ratio:5.2f}   (target >= 0.5)")
    print(f"prediction log at the end: {log_status}")
    if args.keep:
        print(f"workspace and server logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
