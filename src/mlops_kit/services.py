"""The kit's servers in the background on 127.0.0.1: the API, `mlflow server`, `mlflow models serve`,
Prometheus, JupyterLab.

Each starts through `processes` (a process group with its log, a readiness check, a stop) and comes
back as a `Service`: its URL, GET/POST with httpx, the end of its log, and stop().
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from mlops_kit import processes
from mlops_kit.config import EXIT_WITH_PARENT, Settings, settings_env
from mlops_kit.processes import HOST, Process, free_port, http_ready, wait_ready

BIN = Path(sys.executable).parent  # the venv's scripts: mlflow, jupyter


@dataclass
class Service:
    """A server running in the background; stop() (or leaving a `with` block, or exit) ends it."""

    url: str
    port: int
    process: Process | None  # None: a server this interpreter found running, not one it started
    # started with wait=False: what tells that it answers, until wait() has seen it
    _answers: Callable[[], bool] | None = field(default=None, repr=False)
    _what: str = field(default="the server", repr=False)

    def wait(self, timeout: float = 60.0) -> Service:
        """Wait until a server started without waiting answers; stop it and raise if it exits first."""
        if self._answers is not None and self.process is not None:
            wait_ready(self.process, self._answers, self._what, timeout)
            self._answers = None
        return self

    @property
    def log(self) -> Path | None:
        """The server's log file (None for a server found running)."""
        return self.process.log if self.process else None

    def get(self, path: str, timeout: float = 10.0) -> dict:
        """GET a path and decode its JSON answer (any status)."""
        return _decode(httpx.get(f"{self.url}{path}", timeout=timeout))

    def post(self, path: str, body: object, timeout: float = 30.0) -> tuple[int, dict]:
        """POST JSON to a path; the status and the decoded answer."""
        response = httpx.post(f"{self.url}{path}", json=body, timeout=timeout)
        return response.status_code, _decode(response)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        return self.process.log_tail(chars) if self.process else ""

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the server to stop (graceful: the API flushes its prediction log), kill it if it won't.

        A server found running (not started here) is left alone.
        """
        if self.process:
            self.process.stop(timeout)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _decode(response: httpx.Response) -> dict:
    try:
        value = response.json() if response.content else {}
    except ValueError:  # e.g. mlflow server's /health answers plain "OK"
        return {"text": response.text}
    return value if isinstance(value, dict) else {"value": value}


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_KIT_", "MLFLOW_"))}


def _temp_log(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix="mlops-kit-server-")) / name


def start_api(
    settings: Settings,
    port: int | None = None,
    log: Path | None = None,
    timeout: float = 60.0,
    require_model: bool = True,
    workers: int = 1,
    wait: bool = True,
) -> Service:
    """Start `python -m mlops_kit serve` in its own process group and wait until it answers.

    ``workers`` > 1: that many worker processes on the port; this waits until each has answered.
    ``wait=False``: return at once, while it starts (~3 s); ``Service.wait()`` waits for it.
    """
    port = port or free_port()
    env = {
        **_clean_environ(),
        **settings_env(settings),
        "MLOPS_KIT_API_HOST": HOST,
        EXIT_WITH_PARENT: "1",  # stops itself if this process dies without stopping it
    }
    command = [sys.executable, "-m", "mlops_kit", "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    url = f"http://{HOST}:{port}"
    process = processes.start(command, log or _temp_log("server.log"), env)
    accept = (200,) if require_model else (200, 503)
    pids: set[int] = set()

    def every_worker_answered() -> bool:  # a new connection is taken by any worker that is ready
        if not http_ready(f"{url}/health", accept)():
            return False
        for _ in range(10 * workers):
            pids.add(_decode(httpx.get(f"{url}/health", timeout=5.0)).get("pid"))
            if len(pids) >= workers:
                return True
        return False

    api = Service(url, port, process, every_worker_answered, "the API")
    return api.wait(timeout) if wait else api


def start_mlflow_server(
    backend_uri: str,
    artifacts: Path | None = None,
    port: int | None = None,
    log: Path | None = None,
    timeout: float = 120.0,
    detach: bool = False,
) -> Service:
    """Start `mlflow server` (one worker, no job runner) on 127.0.0.1 and wait until it answers.

    ``detach``: it outlives this interpreter (the team stack) and appends to its log.
    """
    port = port or free_port()
    command = [
        str(BIN / "mlflow"), "server",
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_uri,
    ]  # fmt: skip
    if artifacts is not None:
        artifacts.mkdir(parents=True, exist_ok=True)
        command += ["--serve-artifacts", "--artifacts-destination", str(artifacts)]
    env = {
        **_clean_environ(),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # the default starts many processes
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = log or _temp_log("mlflow-server.log")
    process = processes.start(command, log, env, append=detach, stop_at_exit=not detach)
    url = f"http://{HOST}:{port}"
    wait_ready(process, http_ready(f"{url}/health"), "mlflow server", timeout, interval=0.3)
    return Service(url, port, process)


def start_mlflow_models_serve(
    model_uri: str,
    tracking_uri: str | None = None,
    port: int | None = None,
    log: Path | None = None,
    timeout: float = 120.0,
) -> Service:
    """Start `mlflow models serve` for a model URI on 127.0.0.1 and wait until /ping answers.

    It runs in this venv (``--env-manager local``: no environment is built, nothing downloaded);
    ``tracking_uri``: where a ``models:/`` or ``runs:/`` URI is resolved.
    """
    port = port or free_port()
    command = [
        str(BIN / "mlflow"), "models", "serve", "--model-uri", model_uri,
        "--env-manager", "local", "--host", HOST, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {
        **_clean_environ(),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # it execs the venv's uvicorn
    }
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    process = processes.start(command, log or _temp_log("mlflow-models-serve.log"), env)
    url = f"http://{HOST}:{port}"
    wait_ready(process, http_ready(f"{url}/ping"), "mlflow models serve", timeout, interval=0.3)
    return Service(url, port, process)


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
    detach: bool = False,
) -> Service:
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
    log = folder / "prometheus.log"
    process = processes.start(
        command, log, dict(os.environ), append=detach, stop_at_exit=not detach
    )
    url = f"http://{HOST}:{port}"
    wait_ready(process, http_ready(f"{url}/-/ready"), "prometheus", timeout, interval=0.3)
    return Service(url, port, process)


@contextmanager
def jupyter_lab(notebook_dir: Path, timeout: float = 90.0) -> Iterator[str]:
    """`jupyter lab` headless on a free port of 127.0.0.1; yields its URL with the token; stops it.

    Its layout and checkpoints are kept in a temporary folder: the presenter's open tabs and the
    notebooks folder are not touched.
    """
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://{HOST}:{port}"
    with tempfile.TemporaryDirectory(prefix="mlops-kit-lab-") as tmp:
        command = [
            str(BIN / "jupyter"), "lab", "--no-browser",
            f"--ip={HOST}", f"--port={port}", f"--IdentityProvider.token={token}",
            f"--notebook-dir={notebook_dir}", f"--LabApp.workspaces_dir={tmp}",
            f"--FileCheckpoints.checkpoint_dir={tmp}/checkpoints",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]  # fmt: skip
        if os.geteuid() == 0:
            command.append("--allow-root")
        lab = processes.start(command, Path(tmp) / "lab.log")
        try:
            ready = http_ready(f"{base}/api/status?token={token}")
            wait_ready(lab, ready, "jupyter lab", timeout, interval=0.3)
            yield f"{base}/lab?token={token}"
        finally:
            # its own shutdown stops its kernels too; the group is killed only if it will not go
            with suppress(httpx.HTTPError):
                httpx.post(f"{base}/api/shutdown?token={token}", timeout=10)
            lab.wait(20)
            lab.stop(timeout=10)
