"""Point MLflow at the kit's tracking store: the embedded SQLite database or a real server."""

from __future__ import annotations

import logging
import os
from functools import cached_property

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.tracking import MlflowClient
from mlflow.types import Schema

from mlops_kit.config import Settings
from mlops_kit.dataset import PreparedData

INVOCATION_ENV = "MLOPS_KIT_INVOCATION_ID"  # set by the papermill runner, tagged on every run
_QUIET = ("mlflow", "alembic")
_EXPORTED = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
# The kit trains classic models: its experiments say so with the tag MLflow 3 defines for it.
# MLflow 3.17's UI, though, picks its view from a "GenAI | Model training" switch kept in the
# browser (GenAI until clicked) or from the page's ?workflowType=: ui_url() links with it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
UI_VIEW = "workflowType=machine_learning"


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
            settings.experiment_name,
            artifact_location=location,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    else:
        experiment_id = experiment.experiment_id
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # made before the kit set the tag
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=experiment_id)
    for name, value in exported.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return experiment_id


def ui_url(settings: Settings, ui: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI's page of the kit's runs, in its model-training view."""
    return f"{ui.rstrip('/')}/#/experiments/{configure(settings)}/runs?{UI_VIEW}"


def client(settings: Settings) -> MlflowClient:
    """An MLflow client bound to the kit's tracking and registry URIs."""
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def invocation_tags() -> dict[str, str]:
    """Tags that tie a run to the papermill invocation that started it (if any)."""
    invocation = os.environ.get(INVOCATION_ENV)
    return {"mlops_kit.invocation_id": invocation} if invocation else {}


# The datasets of the data version being logged: built once and logged on the pipeline's run and
# every candidate's.
_DATASETS: dict[tuple[str, str], object] = {}


def schema_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that decide MLflow's schema of the frame: each text column's distinct values and
    each column's first missing value (plus the first row).

    MLflow infers a text column's type from the types of its values and a column's ``required``
    from whether any value is missing, looking at every value one by one (16 s for the two tables
    of a 1M-row training); on these rows it infers the same schema (tested).
    """
    keep = np.zeros(len(frame), dtype=bool)
    keep[:1] = True
    for _, column in frame.items():
        missing = column.isna().to_numpy()
        if missing.any():
            keep[np.argmax(missing)] = True
        if column.dtype.kind == "O":
            try:
                keep |= ~column.duplicated().to_numpy()
            except TypeError:  # unhashable values: every row, MLflow reads them all anyway
                keep[:] = True
    return frame[keep]


class TableDataset(PandasDataset):
    """MLflow's pandas dataset, its schema inferred from ``schema_rows`` of the table."""

    @cached_property
    def schema(self) -> Schema | None:
        """What MLflow's own inference gives for the whole table."""
        return PandasDataset(schema_rows(self.df), source=self.source, digest=self.digest).schema


def _dataset(prepared: PreparedData, split: str, frame: pd.DataFrame) -> object:
    card = prepared.card
    key = (card.data_version, split)
    if key not in _DATASETS:
        if not any(version == card.data_version for version, _ in _DATASETS):
            _DATASETS.clear()  # another data version: forget the previous one's
        _DATASETS[key] = TableDataset(
            frame,
            # the split's file in the data version (an explicit source: a bare path string makes
            # MLflow warn that two local sources could read it, mlflow/mlflow#9702)
            source=LocalArtifactDatasetSource(card.files.get(split, card.source)),
            targets=prepared.spec.target,
            name=f"{split}-{card.data_version}",
            digest=card.data_version,
        )
    return _DATASETS[key]


def log_data_inputs(prepared: PreparedData) -> None:
    """Log the training and held-out tables as the active run's dataset inputs, named by data version."""
    for split, frame, context in (
        ("train", prepared.train, "training"),
        ("eval", prepared.eval, "evaluation"),
    ):
        mlflow.log_input(_dataset(prepared, split, frame), context=context)
