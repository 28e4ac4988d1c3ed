"""Fixtures for the API tests: a trained registry, a workspace per test, real server processes."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_wine

from mlops_kit import processes, services
from mlops_kit.config import CHAMPION, PENGUIN_FEATURES, Settings, get_settings
from mlops_kit.serving.app import create_app
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import clear_env, kit_setting, reset_mlflow, table_spec

with warnings.catch_warnings():
    warnings.simplefilter(
        "ignore"
    )  # starlette asks for httpx2 here; the kit's dev deps carry httpx
    from fastapi.testclient import TestClient

PYTHON = sys.executable
MLFLOW_BIN = str(Path(sys.executable).parent / "mlflow")
HOST = processes.HOST
# A complete record as a user sends it; also valid for v2, which does not know 'sex'.
RECORD = {
    "island": "Dream",
    "bill_length_mm": 46.5,
    "bill_depth_mm": 17.9,
    "flipper_length_mm": 192.0,
    "body_mass_g": 3500.0,
}
NO_SEX = [f for f in PENGUIN_FEATURES if f != "sex"]


@dataclass(frozen=True)
class Registry:
    """A trained store: v1 (all penguin features) is champion; v2 (trained without 'sex') is not."""

    workspace: Path
    model_name: str


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Train two versions once per session; tests copy its database and never write into it."""
    root = tmp_path_factory.mktemp("serving-registry")
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        settings = Settings(workspace=root / "workspace", runs_dir=root / "runs")
        try:
            run_training_pipeline(settings, candidates=["logistic_regression"])
            run_training_pipeline(
                settings,
                table_spec(features=NO_SEX),
                candidates=["logistic_regression"],
                quality_gate=0.0,
            )
            client = MlflowClient(settings.tracking_uri, settings.registry_uri)
            client.set_registered_model_alias(settings.model_name, CHAMPION, "1")
        finally:
            reset_mlflow()
    return Registry(settings.workspace, settings.model_name)


WINE_FEATURES = ["alcohol", "malic_acid", "flavanoids", "color_intensity", "proline"]
WINE_FEATURES += ["od280/od315_of_diluted_wines"]  # a header the kit renames (no '/' in names)


def shapes_table(rows: int = 180, seed: int = 0) -> pd.DataFrame:
    """A table with no numbers: the kind follows from the colour, then the shape (each row has its
    own id, which is not a feature, so that no row is a duplicate the data stage drops)."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], rows)
    shape = rng.choice(["round", "square"], rows)
    kind = np.where(colour == "red", "berry", np.where(shape == "round", "ball", "box"))
    ids = [f"item-{i}" for i in range(rows)]
    return pd.DataFrame({"id": ids, "colour": colour, "shape": shape, "kind": kind})


@pytest.fixture(scope="session")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose registry serves a wine model (numbers only) and a shapes model (no
    numbers): each trained by the kit's pipeline from a CSV, each its own registered model."""
    root = tmp_path_factory.mktemp("other-tables")
    wine = load_wine(as_frame=True).frame
    wine["target"] = wine["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    wine.to_csv(root / "wine.csv", index=False)
    shapes_table().to_csv(root / "shapes.csv", index=False)
    runs = {
        "wine": dict(data_path=root / "wine.csv", target="target", features=WINE_FEATURES),
        "shapes": dict(data_path=root / "shapes.csv", target="kind", features=["colour", "shape"]),
    }
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        try:
            for name, run in runs.items():
                settings = Settings(
                    workspace=root / "workspace", runs_dir=root / "runs", model_name=name
                )
                run_training_pipeline(
                    settings,
                    table_spec(**run),
                    candidates=["logistic_regression"],
                    quality_gate=0.0,
                )
        finally:
            reset_mlflow()
    return root / "workspace"


@pytest.fixture
def workspace(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """This test's own workspace holding a copy of the trained registry database (v1 champion)."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    shutil.copy2(registry.workspace / "mlflow.db", ws / "mlflow.db")
    clear_env(monkeypatch)
    monkeypatch.setenv("MLOPS_KIT_WORKSPACE", str(ws))
    monkeypatch.setenv("MLOPS_KIT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    yield ws
    reset_mlflow()


@pytest.fixture
def settings(workspace: Path) -> Settings:
    """Settings inside the test's workspace; no background polling unless a test asks for it."""
    return get_settings(reload_interval=0)


@pytest.fixture
def make_client(workspace: Path) -> Iterator[Callable[..., TestClient]]:
    """Start the app (lifespan included) with settings overrides; stopped at the end of the test."""
    stack: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        overrides.setdefault("reload_interval", 0)
        client = TestClient(create_app(get_settings(**overrides)))
        client.__enter__()
        stack.append(client)
        return client

    yield make
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """The app serving the registry's champion (v1)."""
    return make_client()


@pytest.fixture
def record() -> dict[str, object]:
    """A complete record without 'sex' (valid for both versions); tests add 'sex' if needed."""
    return dict(RECORD)


@pytest.fixture
def promote(settings: Settings) -> Callable[[str], None]:
    """Point the test registry's `champion` alias at another version, as a promotion does."""

    def move(version: str) -> None:
        client = MlflowClient(settings.tracking_uri, settings.registry_uri)
        client.set_registered_model_alias(settings.model_name, CHAMPION, version)

    return move


@dataclass
class Server:
    """A server process started by a test, and where it listens."""

    url: str
    process: processes.Process

    def stop(self) -> None:
        """Ask it to stop (SIGTERM: a graceful shutdown), kill it if it does not."""
        self.process.stop(timeout=20)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not kit_setting(k)}
    return {**env, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **extra}


@contextmanager
def api_process(log: Path, **env: str) -> Iterator[Server]:
    """`python -m mlops_kit serve` on a free port of 127.0.0.1; `env`: MLOPS_KIT_*, MLFLOW_*."""
    port = processes.free_port()
    command = [PYTHON, "-m", "mlops_kit", "serve", "--port", str(port)]
    server = Server(f"http://{HOST}:{port}", processes.start(command, log, _clean_env(**env)))
    try:  # ready when /health answers at all: some tests start an API that has no model
        processes.wait_ready(
            server.process, processes.http_ready(f"{server.url}/health", None), "the API", 90
        )
        yield server
    finally:
        server.stop()


@contextmanager
def mlflow_server(root: Path) -> Iterator[services.Service]:
    """A real `mlflow server` on a free port of 127.0.0.1 (one worker, no job runner)."""
    with services.start_mlflow_server(
        f"sqlite:///{root / 'srv.db'}", root / "art", log=root / "mlflow-server.log"
    ) as server:
        yield server


@pytest.fixture
def start_api() -> Callable[..., AbstractContextManager[Server]]:
    """`with start_api(log, **env) as server:` the API as a real uvicorn process."""
    return api_process


@pytest.fixture
def start_mlflow_server() -> Callable[[Path], AbstractContextManager[services.Service]]:
    """`with start_mlflow_server(root) as server:` a real `mlflow server` process."""
    return mlflow_server
