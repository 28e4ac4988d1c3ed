"""Fixtures for batch scoring: the session's trained penguins store and a wine model with an id
column, each copied into the test's own workspace; the API over the same store, for comparisons."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_wine

from mlops_kit.config import Settings, get_settings
from tests.conftest import Trained
from tests.helpers import clear_env, reset_mlflow, table_spec

with warnings.catch_warnings():
    warnings.simplefilter(
        "ignore"
    )  # starlette asks for httpx2 here; the kit's dev deps carry httpx
    from fastapi.testclient import TestClient

BATCH_EXPERIMENT = "batch-tests"  # runs of a test land in its own workspace, not the shared store's


@dataclass(frozen=True)
class Store:
    """A trained store's database and the model it serves."""

    workspace: Path
    model_name: str


@pytest.fixture(scope="session")
def wine_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A wine model trained by the kit from a CSV with an `id` column (left out as identifier)."""
    from mlops_kit.training_pipeline import run_training_pipeline

    root = tmp_path_factory.mktemp("wine-store")
    wine = wine_table()
    wine.to_csv(root / "wine.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        settings = Settings(workspace=root / "workspace", runs_dir=root / "runs", model_name="wine")
        try:
            run_training_pipeline(
                settings,
                table_spec(data_path=root / "wine.csv", target="cultivar", split_column="none"),
                candidates=["logistic_regression"],
                quality_gate=0.0,
            )
        finally:
            reset_mlflow()
    return Store(settings.workspace, "wine")


def wine_table() -> pd.DataFrame:
    """scikit-learn's wine table as a user has it: an id first, the file's own headers."""
    wine = load_wine(as_frame=True).frame
    wine["cultivar"] = wine.pop("target").map({0: "barolo", 1: "grignolino", 2: "barbera"})
    wine.insert(0, "id", [f"w{i:03d}" for i in range(len(wine))])
    return wine


def _use(store: Path, model_name: str, tmp_path: Path, mp: pytest.MonkeyPatch) -> Settings:
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    shutil.copy2(store / "mlflow.db", workspace / "mlflow.db")
    clear_env(mp)
    mp.setenv("MLOPS_KIT_WORKSPACE", str(workspace))
    mp.setenv("MLOPS_KIT_RUNS_DIR", str(tmp_path / "runs"))
    mp.setenv("MLOPS_KIT_MODEL_NAME", model_name)
    mp.setenv("MLOPS_KIT_EXPERIMENT_NAME", BATCH_EXPERIMENT)
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return get_settings(reload_interval=0)


@pytest.fixture
def penguins(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings over a copy of the session's penguins store (champion v1), in this test's folder."""
    yield _use(trained.settings.workspace, trained.settings.model_name, tmp_path, monkeypatch)
    reset_mlflow()


@pytest.fixture
def wine(wine_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings over a copy of the wine store, in this test's folder."""
    yield _use(wine_store.workspace, wine_store.model_name, tmp_path, monkeypatch)
    reset_mlflow()


@pytest.fixture
def api() -> Iterator[Callable[[Settings], TestClient]]:
    """`api(settings)`: the kit's API over the same store, started (and stopped after the test)."""
    from mlops_kit.serving.app import create_app

    started: list[TestClient] = []

    def start(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings))
        client.__enter__()
        started.append(client)
        return client

    yield start
    for client in reversed(started):
        client.__exit__(None, None, None)


@pytest.fixture
def held_out(trained: Trained) -> pd.DataFrame:
    """The penguins' held-out season (2009) as the data stage left it, every column."""
    return trained.result.prepared.eval.reset_index(drop=True)
