"""Following the `champion` alias: swaps without restart, serves on when the registry is gone."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from mlops_kit.config import Settings
from mlops_kit.serving.routes.predictions import answer


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll a condition every 50 ms until it holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_poller_serves_the_new_champion_without_restart(
    make_client: Callable[..., TestClient], promote: Callable[[str], None], record: dict
) -> None:
    client = make_client(reload_interval=0.1)
    assert client.post("/predict", json={**record, "sex": "male"}).json()["model_version"] == "1"
    promote("2")
    assert wait_until(lambda: client.get("/health").json()["model_version"] == "2")
    assert client.post("/predict", json=record).json()["model_version"] == "2"
    assert client.get("/model").json()["version"] == "2"
    # v2 was trained without 'sex': the request schema follows the served model, where 'sex' is
    # now a column of the file it accepts and does not use (a row as in the file), not an input
    ignored = client.post("/predict", json={**record, "sex": "male"})
    assert ignored.status_code == 200 and ignored.json()["model_version"] == "2"
    assert "Sex" in client.get("/model").json()["ignored_columns"]  # as the file names it
    assert "sex" not in client.get("/model").json()["inputs"]


def test_unreachable_registry_keeps_the_model_and_degrades_health(
    make_client: Callable[..., TestClient], workspace: Path, record: dict
) -> None:
    client = make_client(reload_interval=0.1)
    db = workspace / "mlflow.db"
    db.rename(workspace / "mlflow.db.away")  # the embedded registry disappears
    assert wait_until(lambda: client.get("/health").json()["status"] == "degraded")
    health = client.get("/health").json()
    assert health["model_loaded"] is True and health["registry"]["reachable"] is False
    assert "registry unreachable" in health["registry"]["error"]
    response = client.post("/predict", json=record)
    assert response.status_code == 200 and response.json()["model_version"] == "1"
    (workspace / "mlflow.db.away").rename(db)
    assert wait_until(lambda: client.get("/health").json()["status"] == "ok")


def test_a_version_that_cannot_load_does_not_replace_the_champion(
    client: TestClient, settings: Settings, record: dict
) -> None:
    registry = MlflowClient(settings.tracking_uri, settings.registry_uri)
    broken = registry.create_model_version(
        settings.model_name, source=(settings.workspace / "no-such-model").as_uri()
    )
    registry.set_registered_model_alias(settings.model_name, "champion", broken.version)
    swapped, message = client.app.state.loader.check()
    assert not swapped and f"could not load penguins-classifier v{broken.version}" in message
    assert client.post("/predict", json=record).json()["model_version"] == "1"
    health = client.get("/health").json()
    assert health["status"] == "degraded" and "could not load" in health["registry"]["error"]


def test_a_request_is_answered_by_the_version_it_started_with(
    client: TestClient, promote: Callable[[str], None], record: dict
) -> None:
    """The swap replaces one reference; a request holding the old Champion finishes with it."""
    loader = client.app.state.loader
    held = loader.current
    promote("2")
    assert loader.check()[0] is True
    text, entry = answer(json.dumps({**record, "sex": "male"}).encode(), held, "r1", 0.7)
    assert json.loads(text)["model_version"] == "1" and entry.model_version == "1"
    assert loader.current.version == "2"
