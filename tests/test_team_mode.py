"""Team mode: the pipeline against a real `mlflow server` process, nothing in the embedded store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlops_kit.config import get_settings
from mlops_kit.registry import CHAMPION, registry_table
from mlops_kit.workflow import run_training_pipeline

MLFLOW_BIN = Path(sys.executable).with_name("mlflow")
READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"mlflow server exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    pytest.fail(
        f"mlflow server not healthy after {READY_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real tracking server on a free local port; yields its URL and artifact folder."""
    root = tmp_path / "server"
    root.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_KIT_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["PATH"] = f"{MLFLOW_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
    log = root / "server.log"
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [
                str(MLFLOW_BIN),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{root / 'srv.db'}",
                "--artifacts-destination",
                str(root / "art"),
            ],
            cwd=root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so its workers stop with it
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, server, log)
        yield url, root / "art"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)


def test_pipeline_against_a_tracking_server(mlflow_server, monkeypatch):
    url, artifacts = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    settings = get_settings()
    assert not settings.embedded

    result = run_training_pipeline(settings, candidates=["logistic_regression", "knn"])
    assert result.decision.promoted
    assert result.decision.version == "1"

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    version = client.get_model_version_by_alias(settings.model_name, CHAMPION)
    assert str(version.version) == "1"
    assert version.tags["gate"] == "passed"
    assert client.get_run(result.run_id).data.tags["registered_version"] == "1"
    assert list(registry_table(settings)["aliases"]) == ["champion"]

    # nothing went to the embedded store; the models went to the server's artifact store
    assert not settings.mlflow_db.exists()
    assert not settings.artifact_root.exists()
    assert any(artifacts.rglob("MLmodel"))

    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    out = model.predict(result.prepared.X_eval.head(3))
    assert list(out["predicted"]) == list(result.prepared.y_eval.head(3))
