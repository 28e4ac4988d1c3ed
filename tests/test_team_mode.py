"""Team mode: the pipeline against a real `mlflow server` process, nothing in the embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlops_kit.config import get_settings
from mlops_kit.registry import CHAMPION, registry_table
from mlops_kit.serving.process import start_mlflow_server
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
