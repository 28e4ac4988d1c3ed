"""Team mode: the pipeline against a real `mlflow server` process, nothing in the embedded store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from mlops_kit import postgres, team
from mlops_kit.config import get_settings
from mlops_kit.processes import free_port
from mlops_kit.registry import CHAMPION, registry_table
from mlops_kit.services import start_api, start_mlflow_server
from mlops_kit.training_pipeline import run_training_pipeline

pytestmark = pytest.mark.slow  # real training, notebooks or server processes


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real tracking server on a free local port; yields its URL and artifact folder."""
    root = tmp_path / "server"
    root.mkdir()
    artifacts = root / "art"
    with start_mlflow_server(
        f"sqlite:///{root / 'srv.db'}", artifacts, log=root / "server.log"
    ) as srv:
        yield srv.url, artifacts


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


def test_team_stack_on_postgresql_trains_into_its_registry(tmp_path: Path) -> None:
    """`team up` → `mlops-kit train` with its exports → the version is in its registry → `down`."""
    from tests.store.postgres import reachable_folder, require_postgres

    require_postgres()
    root = reachable_folder("mlops-kit-team-")
    try:
        api_port = free_port()
        stack, news = team.up(
            root,
            pg_port=free_port(),
            mlflow_port=free_port(),
            prometheus_port=free_port(),
            api_port=api_port,
        )
        prometheus = f"http://127.0.0.1:{stack.prometheus_port}"
        assert team.up(root)[1] == [
            f"PostgreSQL already up on 127.0.0.1:{stack.pg_port}",
            f"mlflow server already up on {stack.tracking_uri}",
            f"Prometheus already up on {prometheus}",
        ]
        targets: list = []
        for _ in range(100):  # Prometheus lists its targets once discovery has run
            targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
            targets = targets["activeTargets"]
            if targets:
                break
            time.sleep(0.2)
        assert [t["scrapeUrl"] for t in targets] == [f"http://127.0.0.1:{api_port}/metrics"]
        state = root / "team.json"  # pids and the role's password, for root's eyes only
        assert state.stat().st_mode & 0o777 == 0o600
        assert team.load(root).mlflow_pid and team.load(root).postgres_pid
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in stack.exports().splitlines()
        )
        assert exports["MLOPS_KIT_STORE_URL"].startswith("postgresql+psycopg://mlops:")

        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_KIT_"))}
        env |= exports | {"MLOPS_KIT_WORKSPACE": str(tmp_path / "ws")}
        train = subprocess.run(
            [sys.executable, "-m", "mlops_kit", "train", "--candidates", "logistic_regression"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert train.returncode == 0, train.stderr[-3000:]

        client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
        version = client.get_model_version_by_alias("penguins-classifier", CHAMPION)
        assert str(version.version) == "1"
        assert any((root / "mlartifacts").rglob("MLmodel"))  # proxied to the stack's folder
        assert not (tmp_path / "ws" / "mlflow.db").exists()
        with sa.create_engine(exports["MLOPS_KIT_STORE_URL"]).connect() as conn:  # the kit's db
            assert conn.exec_driver_sql("SELECT current_database()").scalar() == "kit"
        engine = sa.create_engine(stack.mlflow_backend)  # MLflow's rows are in PostgreSQL
        with engine.connect() as conn:
            names = conn.exec_driver_sql("SELECT name FROM registered_models").scalars().all()
        engine.dispose()
        assert names == ["penguins-classifier"]
    finally:
        news = team.down(root)
        shutil.rmtree(root, ignore_errors=True)
    assert news == ["Prometheus stopped", "mlflow server stopped", "PostgreSQL stopped"]
    assert team.status(root)["postgres"] == "never started"


PENGUIN = {
    "island": "Dream",
    "bill_length_mm": 46.5,
    "bill_depth_mm": 17.9,
    "flipper_length_mm": 192.0,
    "body_mass_g": 3500.0,
    "sex": "female",
}


def test_api_on_postgresql_rides_out_a_database_restart(trained) -> None:  # noqa: ANN001
    """PostgreSQL stopped and started under load: only 200s, every answered record logged once."""
    from tests.store.postgres import throwaway_cluster

    with throwaway_cluster() as pg:
        settings = trained.settings.model_copy(update={"store_url": pg.url})
        with start_api(settings) as api:
            answered: list[int] = []  # records per 200 answer
            refused: list[tuple[int, str | None]] = []  # anything else: status, Retry-After
            stop = threading.Event()

            def client() -> None:
                with httpx.Client(base_url=api.url, timeout=30) as http:
                    while not stop.is_set():
                        response = http.post("/predict", json=[PENGUIN] * 10)
                        if response.status_code == 200:
                            answered.append(10)
                        else:
                            refused.append(
                                (response.status_code, response.headers.get("retry-after"))
                            )

            clients = [threading.Thread(target=client) for _ in range(2)]
            for c in clients:
                c.start()
            try:
                time.sleep(0.5)
                postgres.stop_cluster(pg.cluster)  # pg_ctl stop -m fast under load
                time.sleep(1.0)
                during = api.get("/health")
                postgres.start_cluster(pg.cluster)
                time.sleep(0.5)
            finally:
                stop.set()
                for c in clients:
                    c.join()
            assert during["status"] == "degraded"
            assert "unreachable" in during["prediction_log"]["error"]
            deadline = time.monotonic() + 60
            while (health := api.get("/health"))["prediction_log"]["pending"] and (
                time.monotonic() < deadline
            ):
                time.sleep(0.2)
            # the API recovered by itself; only the backlog answer may refuse, with Retry-After
            assert health["status"] == "ok" and health["prediction_log"]["failed"] == 0
            assert all(status == 503 and after for status, after in refused), refused
        engine = sa.create_engine(pg.url)
        with engine.connect() as conn:
            logged = conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar()
            keys = conn.exec_driver_sql(
                "SELECT count(DISTINCT (request_id, record_index)) FROM predictions"
            ).scalar()
        engine.dispose()
    assert sum(answered) > 0 and logged == keys == sum(answered)
