"""Point MLflow at the kit's tracking store: the embedded SQLite database or a real server."""

from __future__ import annotations

import logging
import os

import mlflow
from mlflow.tracking import MlflowClient

from mlops_kit.config import Settings

INVOCATION_ENV = "MLOPS_KIT_INVOCATION_ID"  # set by the papermill runner, tagged on every run
_QUIET = ("mlflow", "alembic")


def configure(settings: Settings) -> str:
    """Set MLflow's URIs from the settings, make sure the experiment exists; return its id."""
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if settings.embedded:
        settings.workspace.mkdir(parents=True, exist_ok=True)
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        location = settings.artifact_root.as_uri() if settings.embedded else None
        experiment_id = client.create_experiment(settings.experiment_name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def client(settings: Settings) -> MlflowClient:
    """An MLflow client bound to the kit's tracking and registry URIs."""
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def invocation_tags() -> dict[str, str]:
    """Tags that tie a run to the papermill invocation that started it (if any)."""
    invocation = os.environ.get(INVOCATION_ENV)
    return {"mlops_kit.invocation_id": invocation} if invocation else {}
