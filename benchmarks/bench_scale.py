"""Benchmark: the kit at scale — monitor and capture over a long log, training on a big table.

Every case runs in a child process of its own (this script with ``--case``), so its peak memory
is its own: the child reports its wall time and its peak RSS (VmHWM from /proc/self/status).

- ``monitor`` and ``capture`` over 100k and 1M logged predictions: the script writes them straight
  into a temp store with the kit's writer (``PredictionLog``): penguin-shaped records resampled
  from the training data with noise, the newest tenth shifted (a calliper 5 mm off) and less
  confident, spread over 30 days. ``monitor`` reads the whole log (segments of 25, the default);
  ``capture`` takes every low-confidence case (about 9% of the log). ``--pg``: also with the store
  on a throwaway PostgreSQL cluster (as the store's tests start it).
- training (``run_training_pipeline``, every candidate, tracked in a temp MLflow) at 10k, 100k
  and 1M rows of a table scaled up from the raw penguins (rows resampled with seeded noise).
- with ``--api``: sustained rows/s of the API into PostgreSQL with 1 and 2 workers beside SQLite
  with 1 (a throwaway cluster, as the store's tests start it), 10k records per request sent as
  records and column-wise, and in-process pyfunc rows/s of the same records.

It prints the figures and the issue's targets beside them; it is a measurement, not a test.
``--before REV`` also runs monitor and capture on the smaller log with the code of an earlier
commit (its src/).

    .venv/bin/python benchmarks/bench_scale.py [--quick] [--pg] [--api] [--no-train] [--before REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PENGUINS_RAW = ROOT / "data" / "raw" / "penguins_raw.csv"
ENTRY_ROWS = 10_000  # predictions per logged request when filling the store
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
# noise added to the raw measurements when the table is scaled up (about a tenth of their spread)
RAW_NOISE = {
    "Culmen Length (mm)": (0.5, 1),
    "Culmen Depth (mm)": (0.2, 1),
    "Flipper Length (mm)": (1.5, 0),
    "Body Mass (g)": (80.0, 0),
}


# ---------------------------------------------------------------- data


def scaled_penguins(rows: int, seed: int = 0) -> pd.DataFrame:
    """The raw penguins table resampled to `rows` rows, measurements with seeded noise."""
    raw = pd.read_csv(PENGUINS_RAW)
    rng = np.random.default_rng(seed)
    table = raw.iloc[rng.integers(0, len(raw), rows)].reset_index(drop=True)
    for column, (noise, decimals) in RAW_NOISE.items():
        table[column] = (table[column] + rng.normal(0.0, noise, rows)).round(decimals)
    table["Sample Number"] = np.arange(1, rows + 1)  # every row a bird of its own
    table["Individual ID"] = [f"S{i}" for i in range(rows)]
    return table


def fill_log(url: str, rows: int, seed: int = 0) -> float:
    """Write `rows` penguin-shaped predictions into the store at `url`; returns rows/s."""
    from mlops_kit.config import Settings
    from mlops_kit.data import prepare
    from mlops_kit.store.predictions.entry import LogEntry
    from mlops_kit.store.predictions.writer import PredictionLog

    prepared = prepare(Settings().table, Settings(), write=False)
    train = prepared.train
    numeric, categorical = prepared.spec.numeric, prepared.spec.categorical
    rng = np.random.default_rng(seed)
    size = max(1, min(ENTRY_ROWS, rows // 20))  # at least 20 requests: the newest 2 are shifted
    entries = -(-rows // size)
    start = datetime.now(UTC) - timedelta(days=30)
    log = PredictionLog(url)
    log.start()
    t0 = time.perf_counter()
    for k in range(entries):
        n = min(size, rows - k * size)
        shifted = k >= entries * 0.9  # the newest tenth: a calliper 5 mm off, less sure answers
        picked = train.iloc[rng.integers(0, len(train), n)]
        inputs: dict[str, Any] = {}
        for column in numeric:
            values = picked[column].to_numpy(dtype=float) + rng.normal(0, 0.5, n)
            if shifted and column in ("bill_length_mm", "bill_depth_mm"):
                values = values + 5.0
            inputs[column] = values.round(1)
        for column in categorical:
            inputs[column] = picked[column].astype(object).where(picked[column].notna()).tolist()
        confidence = rng.beta(3 if shifted else 8, 1, n).clip(0.34, 1.0)  # < 0.7: 34% / 6%
        rest = (1 - confidence)[:, None] * rng.dirichlet([1, 1], n)
        predicted = rng.integers(0, 3, n)
        proba = np.empty((n, 3))
        for i in range(3):  # the predicted class gets the confidence, the others share the rest
            others = [j for j in range(3) if j != i]
            mask = predicted == i
            proba[mask, i] = confidence[mask]
            proba[np.ix_(mask, others)] = rest[mask]
        log.submit(
            LogEntry(
                f"bench-{k}", start + timedelta(days=30) * k / entries, "penguins-classifier", "1",
                inputs, [CLASSES[i] for i in predicted], confidence.tolist(), proba, CLASSES,
                (confidence < 0.7).tolist(), low_confidence_threshold=0.7,
            )
        )  # fmt: skip
    if not log.flush(3600):
        raise RuntimeError("the prediction log did not finish writing")
    seconds = time.perf_counter() - t0
    log.close()
    if log.status()["failed"]:
        raise RuntimeError(f"the prediction log failed: {log.status()['error']}")
    return rows / seconds


# ---------------------------------------------------------------- cases (in a child process)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_case(case: str, workspace: Path, store: str, rows: int, table: str | None) -> None:
    """One measured case; prints a JSON line: seconds, peak RSS, RSS before, and a note."""
    from mlops_kit.config import get_settings

    settings = get_settings(workspace=workspace, store_url=store, data_path=table)
    if case == "fill":
        rate = fill_log(store, rows)
        print(json.dumps({"note": f"{rate:,.0f} rows/s"}))
        return
    if case == "monitor":
        from mlops_kit.monitoring.monitor import monitor

        def call() -> str:
            report = monitor(settings)
            return f"{report.predictions:,} predictions, {len(report.segments)} segments"

    elif case == "capture":
        from mlops_kit import capture

        def call() -> str:
            return f"{len(capture.capture(settings, track=False)):,} cases"

    elif case == "train":
        from mlops_kit.training_pipeline import run_training_pipeline

        def call() -> str:
            result = run_training_pipeline(settings)
            return f"{len(result.prepared.train):,} training rows, best {result.best.name}"

    elif case == "pyfunc":
        import mlflow

        from mlops_kit.config import CHAMPION
        from mlops_kit.tracking import configure

        configure(settings)
        model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
        frame = pd.DataFrame(json.loads(Path(table).read_text()))
        model.predict(frame)  # warm-up

        def call() -> str:
            for _ in range(rows):
                model.predict(frame)
            return f"{len(frame) * rows:,} rows"

    else:
        raise SystemExit(f"unknown case {case}")
    before = peak_rss_mb()
    t0 = time.perf_counter()
    note = call()
    seconds = time.perf_counter() - t0
    print(
        json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "base_mb": before, "note": note})
    )


def child(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a case in a fresh process; its JSON line, or what went wrong."""
    command = [sys.executable, __file__, *args]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"not done after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {done.returncode}: {tail[:200]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the API into PostgreSQL


def api_rows_per_s(workdir: Path, env: dict[str, str], quick: bool) -> list[tuple[str, str]]:
    """Sustained rows/s of the API into SQLite and PostgreSQL stores: 2 clients sending 10k records
    at a time, as records (/predict) and column-wise (/predict/columns), until all are logged."""
    import threading

    import sqlalchemy as sa

    sys.path.insert(0, str(ROOT))  # tests.store.postgres

    from mlops_kit import processes
    from mlops_kit.postgres import postgres_bin
    from mlops_kit.processes import HOST, free_port
    from tests.store.postgres import throwaway_cluster

    workspace = workdir / "api"
    trained = child(["--case", "train", "--workspace", str(workspace)], env, 900)
    if "error" in trained:
        return [("API", f"no champion: {trained['error']}")]
    from mlops_kit.config import Settings
    from mlops_kit.data import prepare

    records = prepare(Settings().table, Settings(), write=False).X_eval.dropna().to_dict("records")
    big = [records[i % len(records)] for i in range(ENTRY_ROWS)]
    bodies = {  # the same records, as /predict takes them and column-wise
        "/predict": json.dumps(big).encode(),
        "/predict/columns": json.dumps({k: [r[k] for r in big] for k in big[0]}).encode(),
    }
    batches = 6 if quick else 40
    out = []
    payload = workdir / "batch.json"
    payload.write_text(json.dumps(big))
    local = child(
        ["--case", "pyfunc", "--workspace", str(workspace), "--rows", str(batches),
         "--table", str(payload)], env, 900,
    )  # fmt: skip
    pyfunc = 0.0
    if "error" not in local:
        pyfunc = ENTRY_ROWS * batches / local["seconds"]
        out.append(("in-process pyfunc", f"{pyfunc:,.0f} rows/s"))

    repeats = 1 if quick else 3  # timed runs per server and body form: median, and the range

    def measure(name: str, url: str, workers: int) -> None:
        """Start the API, then for each body form: a warm-up, and `repeats` timed runs."""
        port = free_port()
        server_env = {**env, "MLOPS_KIT_WORKSPACE": str(workspace), "MLOPS_KIT_STORE_URL": url}
        process = processes.start(
            [sys.executable, "-m", "mlops_kit", "serve", "--port", str(port),
             "--workers", str(workers)],
            workdir / f"api-{name}.log", server_env,
        )  # fmt: skip
        engine = sa.create_engine(url)

        def rows() -> int:
            with engine.connect() as conn:
                return int(conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar())

        def client(path: str, count: int) -> None:
            import http.client

            conn = http.client.HTTPConnection(HOST, port, timeout=300)
            sent = 0
            while sent < count:
                conn.request("POST", path, bodies[path], {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status == 503 and response.getheader("Retry-After"):
                    time.sleep(float(response.getheader("Retry-After")))  # the log is behind
                    continue
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
                sent += 1
            conn.close()

        def logged_rows_per_s(path: str) -> float:
            """2 clients send `batches` requests (waiting as told when the log is behind: 503 with
            Retry-After); rows/s until the last row is in the log."""
            before = rows()
            clients = [threading.Thread(target=client, args=(path, batches // 2)) for _ in range(2)]
            t0 = time.perf_counter()
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            expected = before + ENTRY_ROWS * (batches // 2) * 2
            while rows() < expected:
                if time.perf_counter() - t0 > 600:
                    raise RuntimeError("rows still missing after 600 s")
                time.sleep(0.05)
            return (expected - before) / (time.perf_counter() - t0)

        try:
            ready = processes.http_ready(f"http://{HOST}:{port}/health")
            processes.wait_ready(process, ready, name, 180, interval=0.25)
            for path in bodies:
                label = f"{name}, {path}"
                try:
                    start = rows()
                    client(path, 1)  # warm-up
                    while rows() < start + ENTRY_ROWS:
                        time.sleep(0.05)
                    rates = sorted(logged_rows_per_s(path) for _ in range(repeats))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    out.append((label, f"failed: {exc}"))
                    continue
                rate = statistics.median(rates)
                share = f", {rate / pyfunc:.0%} of in-process" if pyfunc else ""
                spread = f" ({rates[0]:,.0f}-{rates[-1]:,.0f})" if len(rates) > 1 else ""
                out.append((label, f"{rate:,.0f} rows/s{spread}{share}"))
                print(f"  {label}: {out[-1][1]}", flush=True)
        finally:
            process.stop()
            engine.dispose()

    measure("API -> SQLite, 1 worker", f"sqlite:///{workdir / 'api-store.db'}", 1)
    if postgres_bin() is None:
        out.append(("API -> PostgreSQL", "skipped: PostgreSQL is not installed"))
        return out
    with throwaway_cluster() as postgres:
        for workers in (1, 2):
            engine = sa.create_engine(postgres.url)
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS predictions")
            engine.dispose()
            measure(f"API -> PostgreSQL, {workers} worker(s)", postgres.url, workers)
    return out


def log_cases_on_postgres(
    workdir: Path, env: dict[str, str], sizes: list[int], timeout: float
) -> list[tuple[str, str]]:
    """Fill, monitor and capture with the store on a throwaway PostgreSQL cluster."""
    import sqlalchemy as sa

    sys.path.insert(0, str(ROOT))
    from mlops_kit.postgres import postgres_bin
    from mlops_kit.store import reviews  # noqa: F401 - its tables on `metadata`
    from mlops_kit.store.db import metadata
    from mlops_kit.store.predictions import entry  # noqa: F401 - the log's table on `metadata`
    from tests.store.postgres import throwaway_cluster

    if postgres_bin() is None:
        return [("PostgreSQL store", "skipped: PostgreSQL is not installed")]
    out = []
    with throwaway_cluster() as postgres:
        for n in sizes:
            engine = sa.create_engine(postgres.url)
            metadata.drop_all(engine)
            engine.dispose()
            common = ["--workspace", str(workdir / f"pg-{n}"), "--store", postgres.url]
            common += ["--rows", str(n)]
            filled = child(["--case", "fill", *common], env, timeout)
            out.append((f"fill PostgreSQL with {n:,} predictions", filled.get("note", "")))
            for case in ("monitor", "capture"):
                out.append((f"{case} over {n:,} predictions on PostgreSQL", figure(
                    child(["--case", case, *common], env, timeout))))  # fmt: skip
                print(f"  {out[-1][0]}: {out[-1][1]}", flush=True)
    return out


# ---------------------------------------------------------------- the run


def figure(result: dict[str, Any]) -> str:
    """A case's figures in one cell."""
    if "error" in result:
        return result["error"]
    return (
        f"{result['seconds']:7.1f} s  {result['peak_mb']:6.0f} MB peak "
        f"({result['base_mb']:.0f} MB after imports)  {result['note']}"
    )


def main() -> None:
    """Fill the stores, make the tables, run every case in its own process, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--api", action="store_true", help="also the API's rows/s into PostgreSQL")
    parser.add_argument("--pg", action="store_true", help="monitor/capture on PostgreSQL too")
    parser.add_argument("--no-train", action="store_true", help="skip the training cases")
    parser.add_argument("--no-monitor", action="store_true", help="skip monitor and capture")
    parser.add_argument("--before", metavar="REV", help="monitor/capture with this commit's code")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        workspace = Path(args.workspace)
        run_case(args.case, workspace, args.store or f"sqlite:///{workspace / 'store.db'}",
                 args.rows, args.table)  # fmt: skip
        return

    log_sizes = [2_000, 20_000] if args.quick else [100_000, 1_000_000]
    table_sizes = [1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000]
    timeout = 300 if args.quick else 1800
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_KIT_", "MLFLOW_"))}
    env["PYTHONPATH"] = str(ROOT / "src")
    print(f"bench_scale on {os.cpu_count()} cores, temp folder {workdir}", flush=True)
    rows: list[tuple[str, str]] = []
    try:
        code = {"now": str(ROOT / "src")}
        if args.before:  # that commit's src/ beside this one
            before = workdir / "before"
            before.mkdir()
            subprocess.run(
                f"git archive {shlex.quote(args.before)} src | tar -x -C {shlex.quote(str(before))}",
                shell=True, check=True, cwd=ROOT,
            )  # fmt: skip
            (before / "data").symlink_to(ROOT / "data")  # its project root needs the raw data
            code[args.before] = str(before / "src")
        for n in [] if args.no_monitor else log_sizes:
            for version, src in code.items():
                if version != "now" and n != log_sizes[0]:
                    continue  # the earlier code only on the smaller log: it may take very long
                workspace = workdir / f"log-{n}-{version}"
                case_env = {**env, "PYTHONPATH": src}
                common = ["--workspace", str(workspace), "--rows", str(n)]
                filled = child(["--case", "fill", *common], env, timeout)
                rows.append(
                    (
                        f"fill the log with {n:,} predictions",
                        filled.get("note", filled.get("error", "")),
                    )
                )
                for case in ("monitor", "capture"):
                    label = f"{case} over {n:,} logged predictions" + (
                        f" ({version})" if args.before else ""
                    )
                    rows.append(
                        (label, figure(child(["--case", case, *common], case_env, timeout)))
                    )
                    print(f"  {rows[-1][0]}: {rows[-1][1]}", flush=True)
                shutil.rmtree(workspace, ignore_errors=True)
        if args.pg and not args.no_monitor:
            rows += log_cases_on_postgres(workdir, env, log_sizes, timeout)
        for n in [] if args.no_train else table_sizes:
            path = workdir / f"penguins-{n}.csv"
            scaled_penguins(n).to_csv(path, index=False)
            workspace = workdir / f"train-{n}"
            result = child(
                ["--case", "train", "--workspace", str(workspace), "--table", str(path)],
                env, timeout,
            )  # fmt: skip
            rows.append((f"train on {n:,} rows (every candidate)", figure(result)))
            print(f"  {rows[-1][0]}: {rows[-1][1]}", flush=True)
            shutil.rmtree(workspace, ignore_errors=True)
        if args.api:
            rows += api_rows_per_s(workdir, env, args.quick)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(name) for name, _ in rows) if rows else 0
    print("\nresults")
    for name, value in rows:
        print(f"  {name:{width}s}  {value}")
    print(
        "\ntargets: monitor over 1M predictions under 60 s and 2 GB; 1M-row training at most 10x "
        "the 100k time and under 4 GB; 2 workers on PostgreSQL at least half of in-process rows/s"
    )


if __name__ == "__main__":
    main()
