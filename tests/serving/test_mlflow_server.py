"""Team mode: the API loads the champion from a real `mlflow server`, and outlives that server."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from mlops_kit.config import get_settings
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import reset_mlflow

from .conftest import Server


def test_api_serves_from_a_tracking_server_and_survives_losing_it(
    tmp_path: Path,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    record: dict,
    start_api: Callable[..., AbstractContextManager[Server]],
    start_mlflow_server: Callable[[Path], AbstractContextManager[Server]],
) -> None:
    with start_mlflow_server(tmp_path) as tracking:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
        try:
            trained = run_training_pipeline(get_settings(), candidates=["logistic_regression"])
        finally:
            reset_mlflow()
        env = {
            "MLOPS_KIT_WORKSPACE": str(workspace / "api"),  # nothing local: all from the server
            "MLFLOW_TRACKING_URI": tracking.url,
            "MLOPS_KIT_RELOAD_INTERVAL": "0.3",
        }
        with start_api(tmp_path / "api.log", **env) as api, httpx.Client(base_url=api.url) as http:
            answer = http.post("/predict", json=record)
            assert answer.status_code == 200 and answer.json()["model_version"] == "1"
            info = http.get("/model").json()
            assert info["run_id"] == trained.best.run_id
            assert info["source"].startswith("mlflow-artifacts:")
            assert http.get("/health").json()["status"] == "ok"

            tracking.stop()
            deadline = time.monotonic() + 60
            while (
                http.get("/health").json()["status"] != "degraded" and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            health = http.get("/health").json()
            assert health["status"] == "degraded" and health["registry"]["reachable"] is False
            still = http.post("/predict", json=record)
            assert still.status_code == 200 and still.json()["model_version"] == "1"
