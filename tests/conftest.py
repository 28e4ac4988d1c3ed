"""Shared fixtures: each test gets its own workspace and a clean MLflow; one trained store per session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_kit.config import PROJ_ROOT, Settings, get_settings
from mlops_kit.training_pipeline import PipelineResult, run_training_pipeline

PENGUINS_CSV = PROJ_ROOT / "data" / "raw" / "penguins_raw.csv"
# Variables that would point a test at someone's real MLflow or change the kit's defaults.
MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
)


def kit_setting(name: str) -> bool:
    """True for an environment variable that changes where the kit or MLflow reads and writes."""
    return name.startswith("MLOPS_KIT_") or name in MLFLOW_ENV


def clear_env(mp: pytest.MonkeyPatch) -> None:
    """Remove every kit and MLflow setting from the environment (restored by `mp`)."""
    for name in list(os.environ):
        if kit_setting(name):
            mp.delenv(name)


def run_cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user does, in a fresh process that inherits the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "mlops_kit", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def reset_mlflow() -> None:
    """Forget MLflow's process-wide state: active runs, URIs and the env vars MLflow exports."""
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name in MLFLOW_ENV:
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test writes into its own workspace and runs folder, with no MLflow env inherited."""
    clear_env(monkeypatch)
    monkeypatch.setenv("MLOPS_KIT_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("MLOPS_KIT_RUNS_DIR", str(tmp_path / "runs"))
    yield
    reset_mlflow()


@pytest.fixture
def settings(isolated: None) -> Settings:
    """The kit's settings as a user gets them, inside the test's workspace."""
    return get_settings()


@dataclass(frozen=True)
class Trained:
    """A store where the default pipeline ran once: v1 registered and champion."""

    settings: Settings
    result: PipelineResult


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Run the default training pipeline once per session; tests must only read this store."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        settings = Settings(workspace=root / "workspace", runs_dir=root / "runs")
        try:
            result = run_training_pipeline(settings)
        finally:
            reset_mlflow()
    return Trained(settings, result)


@pytest.fixture
def use_trained(trained: Trained, isolated: None) -> Trained:
    """Point MLflow's fluent API at the session's trained store (reset after the test)."""
    mlflow.set_tracking_uri(trained.settings.tracking_uri)
    mlflow.set_registry_uri(trained.settings.registry_uri)
    return trained


@pytest.fixture
def penguins_raw() -> pd.DataFrame:
    """The shipped raw penguins table, as text, to derive broken or changed copies from."""
    return pd.read_csv(PENGUINS_CSV, dtype=str, keep_default_na=False)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[pd.DataFrame | str, str], Path]:
    """Write a DataFrame (or raw text) as a CSV file in the test's folder; return its path."""

    def write(content: pd.DataFrame | str, name: str = "table.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        else:
            content.to_csv(path, index=False)
        return path

    return write


def iris_like(rows_per_class: int = 30, seed: int = 0) -> pd.DataFrame:
    """A user's own table: other column names, three well separated classes, no season column."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, kind in enumerate(["setosa", "versicolor", "virginica"]):
        frames.append(
            pd.DataFrame(
                {
                    "Sepal Length": rng.normal(5.0 + i, 0.3, rows_per_class).round(2),
                    "Petal Width": rng.normal(0.3 + 1.0 * i, 0.15, rows_per_class).round(2),
                    "Garden": rng.choice(["north", "south"], rows_per_class),
                    "Kind": kind,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def iris_csv(write_csv: Callable[..., Path]) -> Path:
    """A small synthetic iris-like CSV in the test's folder."""
    return write_csv(iris_like(), "iris_like.csv")


@pytest.fixture
def iris_features() -> list[str]:
    """The feature columns of the iris-like table, spelled as its header spells them."""
    return ["Sepal Length", "Petal Width", "Garden"]


def log_predictions(settings: Settings, frame: pd.DataFrame, features: list[str]) -> None:
    """Write predictions to the settings' prediction log as the API would, one request per request_id.

    `frame` has request_id, the feature columns, predicted, confidence, low_confidence and one
    proba_<class> column per class.
    """
    from datetime import UTC, datetime

    from mlops_kit.store.predictions import LogEntry, PredictionLog

    classes = [c.removeprefix("proba_") for c in frame.columns if c.startswith("proba_")]
    log = PredictionLog(settings.prediction_log)
    log.start()
    for request_id, part in frame.groupby("request_id", sort=False):
        records = part[features].astype(object).where(part[features].notna(), None)
        log.submit(
            LogEntry.from_records(
                request_id=str(request_id),
                created_at=datetime.now(UTC),
                model_name=settings.model_name,
                model_version="1",
                records=records.to_dict("records"),
                predicted=part["predicted"].tolist(),
                confidence=part["confidence"].tolist(),
                probabilities=part[[f"proba_{c}" for c in classes]].to_numpy().tolist(),
                classes=classes,
                low_confidence=part["low_confidence"].tolist(),
            )
        )
    log.close()
