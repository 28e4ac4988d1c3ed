"""Team mode: the pipeline against a real `mlflow server` process, nothing in the embedded store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from mlops_kit import team
from mlops_kit.config import get_settings
from mlops_kit.registry import CHAMPION, registry_table
from mlops_kit.serving.process import free_port, start_mlflow_server
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
        stack, news = team.up(root, pg_port=free_port(), mlflow_port=free_port())
        assert team.up(root)[1] == [
            f"PostgreSQL already up on 127.0.0.1:{stack.pg_port}",
            f"mlflow server already up on {stack.tracking_uri}",
        ]
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
    assert news == ["mlflow server stopped", "PostgreSQL stopped"]
    assert team.status(root)["postgres"] == "never started"
