"""Run the API (or an MLflow server, or Prometheus) in the background on 127.0.0.1: notebooks, tests."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlops_kit.config import Settings, settings_env

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_KIT_", "MLFLOW_"))}


@dataclass
class ApiProcess:
    """A running server process; stop() (or leaving a `with` block, or interpreter exit) ends it."""

    url: str
    port: int
    proc: subprocess.Popen
    log: Path
    _stopped: bool = field(default=False, repr=False)

    def get(self, path: str, timeout: float = 10.0) -> dict:
        """GET a path of the API and decode its JSON answer (any status)."""
        return _request(f"{self.url}{path}", None, timeout)[1]

    def post(self, path: str, body: object, timeout: float = 30.0) -> tuple[int, dict]:
        """POST JSON to a path of the API; the status and the decoded answer."""
        return _request(f"{self.url}{path}", body, timeout)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the server to stop (graceful: the prediction log is flushed), kill it if it won't."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass

    def __enter__(self) -> ApiProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _decode(payload: bytes) -> dict:
    try:
        value = json.loads(payload or b"{}")
    except json.JSONDecodeError:  # e.g. mlflow server's /health answers plain "OK"
        return {"text": payload.decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


def _request(url: str, body: object | None, timeout: float) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def _launch(command: list[str], env: dict[str, str], port: int, log: Path | None) -> ApiProcess:
    if log is None:
        log = Path(tempfile.mkdtemp(prefix="mlops-kit-server-")) / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, never orphaned
        )
    server = ApiProcess(f"http://{HOST}:{port}", port, proc, log)
    atexit.register(server.stop)  # a failing notebook cell or test still stops the server
    return server


def _wait(
    server: ApiProcess,
    what: str,
    timeout: float,
    accept: tuple[int, ...],
    path: str = "/health",
) -> ApiProcess:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"{what} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            if _request(f"{server.url}{path}", None, 2.0)[0] in accept:
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def start_api(
    settings: Settings,
    port: int | None = None,
    log: Path | None = None,
    timeout: float = 60.0,
    require_model: bool = True,
    workers: int = 1,
) -> ApiProcess:
    """Start `python -m mlops_kit serve` in its own process group and wait until it answers.

    ``workers`` > 1: that many worker processes on the port; this waits until each has answered.
    """
    port = port or free_port()
    env = {
        **_clean_environ(),
        **settings_env(settings),
        "MLOPS_KIT_API_HOST": HOST,
        "MLOPS_KIT_EXIT_WITH_PARENT": "1",  # stops itself if this process dies without stopping it
    }
    command = [sys.executable, "-m", "mlops_kit", "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    server = _launch(command, env, port, log)
    deadline = time.monotonic() + timeout
    _wait(server, "the API", timeout, (200,) if require_model else (200, 503))
    pids: set[int] = set()
    while len(pids) < workers:  # a new connection is taken by any worker that is ready
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{len(pids)} of {workers} workers answered:\n{server.log_tail()}")
        pids.add(_request(f"{server.url}/health", None, 5.0)[1].get("pid"))
    return server


def start_mlflow_server(
    backend_uri: str,
    artifacts: Path | None = None,
    port: int | None = None,
    log: Path | None = None,
    timeout: float = 120.0,
) -> ApiProcess:
    """Start `mlflow server` (one worker, no job runner) on 127.0.0.1 and wait until it answers."""
    port = port or free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_uri,
    ]  # fmt: skip
    if artifacts is not None:
        command += ["--artifacts-destination", str(artifacts)]
    env = {
        **_clean_environ(),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # the default starts many processes
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return _wait(_launch(command, env, port, log), "mlflow server", timeout, (200,))


def prometheus_config(targets: list[str], interval: int = 5) -> str:
    """A prometheus.yml that scrapes GET /metrics of the APIs at ``targets`` ("host:port")."""
    every = f"{interval}s"
    config = {
        "global": {"scrape_interval": every, "scrape_timeout": every},
        "scrape_configs": [{"job_name": "mlops-kit-api", "static_configs": [{"targets": targets}]}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def start_prometheus(
    targets: list[str],
    folder: Path,
    port: int | None = None,
    interval: int = 5,
    timeout: float = 60.0,
) -> ApiProcess:
    """Start Prometheus (Debian's package) scraping ``targets``; its config and data in ``folder``."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus is not installed: run `make system-deps`")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(prometheus_config(targets, interval))
    command = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={HOST}:{port}", "--log.level=warn",
    ]  # fmt: skip
    server = _launch(command, dict(os.environ), port, folder / "prometheus.log")
    return _wait(server, "prometheus", timeout, (200,), path="/-/ready")
