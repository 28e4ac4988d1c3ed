"""Benchmark: the kit's API, plain and accelerated, beside `mlflow models serve` (one run).

Trains the default pipeline into a throw-away workspace and starts three servers on 127.0.0.1 for
the same champion: the kit's API with MLOPS_KIT_ACCELERATOR=false (scoring through the MLflow
model), the kit's API with MLOPS_KIT_ACCELERATOR=true (the numpy accelerator where it reproduces
the model), and `mlflow models serve`. Each round measures, the servers taking turns (this
machine is shared and noisy, so a slow spell hits them alike):

- one-record latency (p50, p99) over a keep-alive connection, and the same call in this process;
- throughput with concurrent clients (requests/s);
- one 10,000-record batch, sent as records and column-wise, as rows/s (the API's prediction log
  idle before each), beside in-process pyfunc ``predict`` of the same 10,000 rows;
- sustained rows/s: 15 such batches back to back (as records, and column-wise), timed until
  /health says the prediction log has no rows pending.

It prints the figures side by side and the issue's targets beside them; it is a measurement, not a
test. Only the HTTP contract is used (routes, bodies, /health, /model), never serving internals.
``--before REV`` also serves the API of an earlier commit, in turns with the rest (before/after
figures in one run); ``--writer`` measures the prediction log's writer alone (no API), into SQLite
and, when PostgreSQL is installed, a throwaway cluster.

    .venv/bin/python benchmarks/bench_api.py [--quick] [--rounds 3] [--clients 4] [--keep]
    .venv/bin/python benchmarks/bench_api.py --before 55fce97
    .venv/bin/python benchmarks/bench_api.py --writer
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlops_kit import processes, services
from mlops_kit.processes import HOST, free_port

BIN = Path(sys.executable).parent
BATCH = 10_000
PLAIN, ACCEL, MLFLOW, LOCAL = "plain API", "accelerator", "mlflow serve", "in-process"
BEFORE = "before"  # --before REV: the API of an earlier commit, for before/after figures


# ---------------------------------------------------------------- servers


def get_json(port: int, path: str) -> Any:
    """GET path and decode its JSON answer."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@dataclass
class Server:
    """A running server: where to send records (and columns), and whether it keeps a log."""

    name: str
    port: int
    process: processes.Process
    records_path: str
    wrap: Callable[[list[dict]], object]  # records -> the JSON body this server expects
    columns_path: str | None = None  # a column-wise endpoint, if the server has one
    logs: bool = False  # True: /health reports prediction_log.pending

    def connect(self) -> http.client.HTTPConnection:
        """A keep-alive connection."""
        return http.client.HTTPConnection(HOST, self.port, timeout=120)

    def post(self, conn: http.client.HTTPConnection, path: str, body: bytes) -> None:
        """POST a JSON body; fails on anything but 200."""
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status}: {data[:300]!r}")

    def settle(self, timeout: float = 300.0) -> None:
        """Wait until the server's prediction log has no rows pending (nothing to wait for else)."""
        deadline = time.monotonic() + timeout
        while self.logs and get_json(self.port, "/health")["prediction_log"]["pending"] > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: log rows still pending after {timeout:.0f} s")
            time.sleep(0.005)


def start_api(name: str, env: dict[str, str], workdir: Path) -> Server:
    """The kit's API in its own process, with its own prediction log (a store of its own)."""
    port = free_port()
    store = f"sqlite:///{workdir / name.replace(' ', '-')}.db"
    process = processes.start(
        [str(BIN / "python"), "-m", "mlops_kit", "serve", "--port", str(port)],
        workdir / f"{name.replace(' ', '-')}.log",
        {**env, "MLOPS_KIT_STORE_URL": store, "MLOPS_KIT_PREDICTION_LOG_URL": store},
    )
    return Server(
        name, port, process, "/predict", lambda rs: rs if len(rs) > 1 else rs[0],
        columns_path="/predict/columns", logs=True,
    )  # fmt: skip


def start_mlflow(model_uri: str, tracking_uri: str, workdir: Path) -> Server:
    """`mlflow models serve` on the same model, in the local environment (started, and ready)."""
    served = services.start_mlflow_models_serve(
        model_uri, tracking_uri, log=workdir / "mlflow-serve.log", timeout=180
    )
    return Server(
        MLFLOW, served.port, served.process, "/invocations", lambda rs: {"dataframe_records": rs}
    )


def wait_ready(server: Server, timeout: float = 180.0) -> None:
    """Wait until the server answers 200 on its health path (mlflow's /ping, the kit's /health)."""
    path = "/ping" if server.name == MLFLOW else "/health"
    ready = processes.http_ready(f"http://{HOST}:{server.port}{path}")
    processes.wait_ready(server.process, ready, server.name, timeout, interval=0.25)


# ---------------------------------------------------------------- measurements


def latencies(call: Callable[[], object], n: int) -> list[float]:
    """Seconds taken by each of n sequential calls."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def one_record(server: Server, bodies: list[bytes], n: int) -> list[float]:
    """Sequential one-record requests on one keep-alive connection; seconds per request."""
    conn = server.connect()
    body = itertools.cycle(bodies)
    times = latencies(lambda: server.post(conn, server.records_path, next(body)), n)
    conn.close()
    return times


def throughput(server: Server, bodies: list[bytes], clients: int, seconds: float) -> float:
    """Requests per second with `clients` concurrent keep-alive connections for `seconds`."""
    counts = [0] * clients
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def client(k: int) -> None:
        conn = server.connect()
        body = itertools.cycle(bodies[k:] + bodies[:k])
        try:
            while time.perf_counter() < deadline:
                server.post(conn, server.records_path, next(body))
                counts[k] += 1
        except BaseException as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{server.name}: {errors[0]}")
    return sum(counts) / (time.perf_counter() - start)


def one_batch(server: Server, path: str, body: bytes) -> float:
    """Rows/s of one 10k-record request, the server's log idle before it."""
    server.settle()
    conn = server.connect()
    t0 = time.perf_counter()
    server.post(conn, path, body)
    elapsed = time.perf_counter() - t0
    conn.close()
    return BATCH / elapsed


def sustained(server: Server, path: str, body: bytes, batches: int) -> float:
    """Rows/s of `batches` 10k-record requests back to back, timed until all of them are logged."""
    server.settle()
    conn = server.connect()
    t0 = time.perf_counter()
    for _ in range(batches):
        server.post(conn, path, body)
    server.settle()
    elapsed = time.perf_counter() - t0
    conn.close()
    return BATCH * batches / elapsed


# ---------------------------------------------------------------- the prediction log's writer


def writer_rows_per_s(rounds: int = 5, entries: int = 5) -> dict[str, tuple[float, float]]:
    """The prediction log's writer alone, 10k-row entries: its fast paths and the plain insert.

    Gives (rows per second of wall time, rows per CPU-second) for each; the process does nothing
    else meanwhile, so its CPU time is the writer's (the CPU figure is steadier on a busy machine).
    On PostgreSQL (a throwaway cluster, when installed) the server's own CPU is not counted.
    """
    from mlops_kit.store.predictions.entry import LogEntry
    from mlops_kit.store.predictions.writer import PredictionLog

    rng = np.random.default_rng(0)
    classes = ["Adelie", "Chinstrap", "Gentoo"]

    def entry() -> LogEntry:  # penguin-shaped: four numbers, two texts, some absent
        proba = rng.dirichlet([1, 1, 1], BATCH)
        confidence = proba.max(axis=1)
        return LogEntry(
            "bench", datetime.now(UTC), "penguins-classifier", "1",
            {"island": rng.choice(["Biscoe", "Dream", "Torgersen"], BATCH).tolist(),
             "bill_length_mm": rng.normal(44, 5, BATCH), "bill_depth_mm": rng.normal(17, 2, BATCH),
             "flipper_length_mm": rng.normal(200, 14, BATCH),
             "body_mass_g": np.where(rng.random(BATCH) < 0.05, np.nan, rng.normal(4200, 800, BATCH)),
             "sex": rng.choice(np.array(["male", "female", None], object), BATCH).tolist()},
            np.array(classes, object)[proba.argmax(axis=1)].tolist(), confidence.tolist(), proba,
            classes, (confidence < 0.7).tolist(), low_confidence_threshold=0.7,
        )  # fmt: skip

    batch = [entry() for _ in range(entries)]
    # name: (database, PredictionLog options); each fast path beside the plain SQLAlchemy insert
    ways: dict[str, tuple[str, dict[str, bool]]] = {
        "SQLite, sqlite3 driver (fast_sqlite)": ("sqlite", {"fast_sqlite": True}),
        "SQLite, SQLAlchemy Core": ("sqlite", {"fast_sqlite": False}),
        "PostgreSQL, binary COPY (copy)": ("postgres", {"copy": True}),
        "PostgreSQL, SQLAlchemy Core": ("postgres", {"copy": False}),
    }
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mlops_kit.postgres import postgres_bin

    with contextlib.ExitStack() as stack:
        if postgres_bin() is None:
            print("PostgreSQL is not installed (make system-deps): SQLite only")
            ways = {k: v for k, v in ways.items() if v[0] == "sqlite"}
        else:
            from tests.store.postgres import throwaway_cluster

            postgres = stack.enter_context(throwaway_cluster()).url
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-writer-"))
        wall: dict[str, list[float]] = {name: [] for name in ways}
        cpu: dict[str, list[float]] = {name: [] for name in ways}
        for r in range(rounds):
            for k, (name, (database, options)) in enumerate(ways.items()):  # in turns
                url = f"sqlite:///{folder}/{r}-{k}.db" if database == "sqlite" else postgres
                log = PredictionLog(url, **options)
                log.start()
                t0, c0 = time.perf_counter(), time.process_time()
                for e in batch:
                    log.submit(e)
                if not log.flush(600):
                    raise RuntimeError("the writer did not finish")
                wall[name].append(BATCH * entries / (time.perf_counter() - t0))
                cpu[name].append(BATCH * entries / (time.process_time() - c0))
                log.close()
                if log.status()["failed"]:
                    raise RuntimeError(f"the writer failed: {log.status()['error']}")
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in ways}


# ---------------------------------------------------------------- report


def ms(times: list[float], q: float) -> float:
    """The q-th percentile of `times`, in milliseconds."""
    return float(np.percentile(np.asarray(times), q)) * 1e3


def report(
    lat: dict[str, list[float]],
    rps: dict[str, list[float]],
    batch: dict[tuple[str, str], list[float]],
    held: dict[tuple[str, str], list[float]],
    clients: int,
    batches: int,
) -> None:
    """The figures side by side, then each target with its figure."""
    names = [PLAIN, ACCEL, *([BEFORE] if BEFORE in lat else []), MLFLOW, LOCAL]
    floor = statistics.median(batch[LOCAL, "records"])

    def row(label: str, cell: Callable[[str], float | None], fmt: str) -> None:
        cells = [cell(n) for n in names]
        print(
            f"{label:40s}" + "".join(f"{'-' if c is None else format(c, fmt):>14s}" for c in cells)
        )

    def median(table: dict, key: Any) -> float | None:
        return statistics.median(table[key]) if table.get(key) else None

    def ratio(table: dict, key: Any) -> float | None:
        value = median(table, key)
        return None if value is None else value / floor

    print()
    print(f"{'':40s}" + "".join(f"{n:>14s}" for n in names))
    row("one record, p50 ms", lambda n: ms(lat[n], 50) if lat.get(n) else None, ".2f")
    row("one record, p99 ms", lambda n: ms(lat[n], 99) if lat.get(n) else None, ".2f")
    row(f"throughput, {clients} clients, req/s", lambda n: median(rps, n), ".0f")
    for form in ("records", "columns"):
        row(f"10k batch as {form}, rows/s", lambda n, f=form: median(batch, (n, f)), ".0f")
        row("  of in-process", lambda n, f=form: ratio(batch, (n, f)), ".2f")
    for form in ("records", "columns"):
        row(f"sustained as {form}, rows/s", lambda n, f=form: median(held, (n, f)), ".0f")
        row("  of in-process", lambda n, f=form: ratio(held, (n, f)), ".2f")
    print(f"(sustained: {batches} batches of 10k back to back, until the log has written them)")

    def check(label: str, value: float, target: str, met: bool) -> None:
        print(f"  {label:52s}{value:8.2f}   target {target:8s} {'met' if met else 'MISSED'}")

    mlflow_p50 = ms(lat[MLFLOW], 50)
    print("\ntargets (2 cores):")
    check("plain p50: times lower than mlflow serve", mlflow_p50 / ms(lat[PLAIN], 50), ">= 1.5",
          mlflow_p50 / ms(lat[PLAIN], 50) >= 1.5)  # fmt: skip
    check("accelerator p50: times lower than mlflow serve", mlflow_p50 / ms(lat[ACCEL], 50),
          ">= 3", mlflow_p50 / ms(lat[ACCEL], 50) >= 3)  # fmt: skip
    check("accelerator p99, ms", ms(lat[ACCEL], 99), "< 10", ms(lat[ACCEL], 99) < 10)
    for name in (PLAIN, ACCEL):
        for form in ("records", "columns"):
            value = ratio(batch, (name, form)) or 0.0
            check(f"{name}: 10k batch as {form}, of in-process", value, ">= 0.5", value >= 0.5)
        for form in ("records", "columns"):
            value = ratio(held, (name, form)) or 0.0
            check(f"{name}: sustained as {form}, of in-process", value, ">= 0.3", value >= 0.3)


# ---------------------------------------------------------------- main


def main() -> None:
    """Train, start the three servers, measure in turns, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of turns (default 3)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for throughput")
    parser.add_argument("--keep", action="store_true", help="keep the workspace and server logs")
    parser.add_argument("--writer", action="store_true", help="measure the log's writer alone")
    parser.add_argument("--before", metavar="REV", help="also serve the API of this git commit")
    args = parser.parse_args()
    if args.writer:
        for name, (wall, cpu) in writer_rows_per_s(rounds=2 if args.quick else 5).items():
            print(f"log writer, {name:38s} {wall:8.0f} rows/s {cpu:8.0f} rows/CPU-s")
        return
    rounds = 1 if args.quick else args.rounds
    requests = 200 if args.quick else 500  # one-record requests per server per round
    seconds = 1.0 if args.quick else 3.0  # each throughput run
    repeats = 1 if args.quick else 3  # 10k batches per server and form per round
    batches = 15  # back to back, for the sustained figure

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_KIT_", "MLFLOW_"))}
    env.update(
        MLOPS_KIT_WORKSPACE=str(workdir / "workspace"), MLOPS_KIT_RUNS_DIR=str(workdir / "runs")
    )
    os.environ.clear()
    os.environ.update(env)

    import mlflow
    import pandas as pd

    from mlops_kit.config import CHAMPION, get_settings
    from mlops_kit.training_pipeline import run_training_pipeline

    settings = get_settings()
    print(f"training the default pipeline into {workdir} ...", flush=True)
    result = run_training_pipeline(settings)
    model_uri = f"models:/{settings.model_name}@{CHAMPION}"
    records = result.prepared.X_eval.dropna().to_dict("records")
    big = [records[i % len(records)] for i in range(BATCH)]

    server_env = {
        **env,
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
    }
    lat: dict[str, list[float]] = {}
    rps: dict[str, list[float]] = {}
    batch: dict[tuple[str, str], list[float]] = {}
    held: dict[tuple[str, str], list[float]] = {}
    servers: list[Server] = []
    try:
        servers.append(start_api(PLAIN, {**server_env, "MLOPS_KIT_ACCELERATOR": "false"}, workdir))
        servers.append(start_api(ACCEL, {**server_env, "MLOPS_KIT_ACCELERATOR": "true"}, workdir))
        if args.before:  # that commit's src/ beside this one, imported first by its server
            subprocess.run(
                f"git archive {shlex.quote(args.before)} src | tar -x -C {shlex.quote(str(workdir))}",
                shell=True, check=True, cwd=Path(__file__).resolve().parents[1],
            )  # fmt: skip
            servers.append(
                start_api(BEFORE, {**server_env, "PYTHONPATH": f"{workdir}/src"}, workdir)
            )
        servers.append(start_mlflow(model_uri, settings.tracking_uri, workdir))
        for s in servers:
            wait_ready(s)
        apis = [s for s in servers if s.logs]  # the kit's own: /model and a log
        for s in apis:
            print(f"{s.name}: /model says scoring = {get_json(s.port, '/model').get('scoring')!r}")
        model = mlflow.pyfunc.load_model(model_uri)
        frame, big_frame = pd.DataFrame(records[:1]), pd.DataFrame(big)
        single = {s.name: [json.dumps(s.wrap([r])).encode() for r in records] for s in servers}
        columns = json.dumps({name: [r.get(name) for r in big] for name in records[0]}).encode()
        batches_of = [
            (s, "records", s.records_path, json.dumps(s.wrap(big)).encode()) for s in servers
        ]
        batches_of += [(s, "columns", s.columns_path, columns) for s in servers if s.columns_path]
        print(f"measuring {settings.model_name} ({result.best.name}), {os.cpu_count()} cores, "
              f"{rounds} round(s) ...", flush=True)  # fmt: skip
        for s in servers:  # warm-up
            one_record(s, single[s.name], 20)
        for s, _, path, body in batches_of:
            one_batch(s, path, body)
        latencies(lambda: model.predict(frame), 20)

        for r in range(rounds):
            for s in servers:
                lat.setdefault(s.name, []).extend(one_record(s, single[s.name], requests))
            lat.setdefault(LOCAL, []).extend(latencies(lambda: model.predict(frame), requests))
            for s in servers:
                rps.setdefault(s.name, []).append(
                    throughput(s, single[s.name], args.clients, seconds)
                )
            for _ in range(repeats):
                for s, form, path, body in batches_of:
                    batch.setdefault((s.name, form), []).append(one_batch(s, path, body))
                (spent,) = latencies(lambda: model.predict(big_frame), 1)
                batch.setdefault((LOCAL, "records"), []).append(BATCH / spent)
            for s, form, path, body in batches_of:
                held.setdefault((s.name, form), []).append(sustained(s, path, body, batches))
            print(f"  round {r + 1}/{rounds} done", flush=True)
        logs = {s.name: get_json(s.port, "/health")["prediction_log"] for s in apis}
    finally:
        for s in servers:
            s.process.stop()

    report(lat, rps, batch, held, args.clients, batches)
    for name, status in logs.items():
        print(f"{name} prediction log at the end: {status}")
    if args.keep:
        print(f"workspace and server logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
