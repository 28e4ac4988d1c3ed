"""Shared fixtures: each test gets its own workspace and a clean MLflow; one trained store per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from mlops_kit.config import Settings, get_settings
from tests.helpers import PENGUINS_CSV, clear_env, iris_like, reset_mlflow

if TYPE_CHECKING:
    from mlops_kit.training_pipeline import PipelineResult

# MLflow and the training pipeline are imported by the fixtures that use them (as in helpers.py):
# a test that needs neither, e.g. notebook 03's live run of tests/test_data.py, starts fast.

# Fixtures that train a model or start a server: a test using one is slow (`make test-fast` skips it).
SLOW_FIXTURES = {"trained", "registry", "tables"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a trained registry or a server process as slow."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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
    from mlops_kit.training_pipeline import run_training_pipeline

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
    import mlflow

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


@pytest.fixture
def iris_csv(write_csv: Callable[..., Path]) -> Path:
    """A small synthetic iris-like CSV in the test's folder."""
    return write_csv(iris_like(), "iris_like.csv")


@pytest.fixture
def iris_features() -> list[str]:
    """The feature columns of the iris-like table, spelled as its header spells them."""
    return ["Sepal Length", "Petal Width", "Garden"]


@pytest.fixture
def offline_browser() -> None:
    """Chromium must be there: skipped on a developer's machine without it, a failure in CI."""
    from mlops_kit.talk import browser

    if browser.chromium() is None:
        if os.environ.get("CI"):
            pytest.fail(browser.MISSING)
        pytest.skip(browser.MISSING)
