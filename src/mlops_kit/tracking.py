"""Point MLflow at the kit's tracking store: the embedded SQLite database or a real server."""

from __future__ import annotations

import logging
import os

import mlflow
from mlflow.tracking import MlflowClient

from mlops_kit.config import Settings

INVOCATION_ENV = "MLOPS_KIT_INVOCATION_ID"  # set by the papermill runner, tagged on every run
_QUIET = ("mlflow", "alembic")
_EXPORTED = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")


def configure(settings: Settings) -> str:
    """Set MLflow's URIs from the settings, make sure the experiment exists; return its id."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in notebooks
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if settings.embedded:
        settings.workspace.mkdir(parents=True, exist_ok=True)
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    # mlflow.set_*_uri also export MLFLOW_* env vars; a later get_settings() would read them as
    # "team mode" and keep pointing at this workspace's database, so the env is put back.
    exported = {name: os.environ.get(name) for name in _EXPORTED}
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        location = settings.artifact_root.as_uri() if settings.embedded else None
        experiment_id = client.create_experiment(
            settings.experiment_name, artifact_location=location
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    for name, value in exported.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return experiment_id


def client(settings: Settings) -> MlflowClient:
    """An MLflow client bound to the kit's tracking and registry URIs."""
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def invocation_tags() -> dict[str, str]:
    """Tags that tie a run to the papermill invocation that started it (if any)."""
    invocation = os.environ.get(INVOCATION_ENV)
    return {"mlops_kit.invocation_id": invocation} if invocation else {}
