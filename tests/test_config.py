"""Settings: where the kit keeps its state, how env vars and overrides steer it."""

from __future__ import annotations

from pathlib import Path

import mlflow

from mlops_kit import tracking
from mlops_kit.config import PROJ_ROOT, get_settings


def test_embedded_store_lives_in_the_workspace(settings, tmp_path):
    workspace = tmp_path / "workspace"
    assert settings.workspace == workspace
    assert settings.runs_dir == tmp_path / "runs"
    assert settings.embedded
    assert settings.tracking_uri == f"sqlite:///{workspace / 'mlflow.db'}"
    assert settings.registry_uri == settings.tracking_uri
    assert settings.artifact_root == workspace / "mlartifacts"
    assert settings.data_dir == workspace / "data"


def test_defaults_point_at_the_shipped_penguins(settings):
    assert settings.data_path == PROJ_ROOT / "data" / "raw" / "penguins_raw.csv"
    assert settings.data_path.exists()
    assert settings.target == "species"
    assert settings.split_column == "date_egg"
    assert settings.quality_gate == 0.90
    assert settings.gate_metric == "f1_macro"


def test_tracking_server_from_env_means_team_mode(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    settings = get_settings()
    assert not settings.embedded
    assert settings.tracking_uri == "http://mlflow.example:5000"
    assert settings.registry_uri == "http://mlflow.example:5000"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://registry.example:5000")
    assert get_settings().registry_uri == "http://registry.example:5000"


def test_env_vars_and_overrides(monkeypatch):
    monkeypatch.setenv("MLOPS_KIT_QUALITY_GATE", "0.75")
    monkeypatch.setenv("MLOPS_KIT_FEATURES", '["bill_length_mm", "sex"]')
    settings = get_settings()
    assert settings.quality_gate == 0.75
    assert settings.features == ["bill_length_mm", "sex"]
    assert get_settings(quality_gate=0.5).quality_gate == 0.5
    assert get_settings(quality_gate=None).quality_gate == 0.75  # None means "not given"
    assert get_settings(workspace=Path("/elsewhere")).mlflow_db == Path("/elsewhere/mlflow.db")


def test_configuring_mlflow_does_not_turn_later_settings_into_team_mode(settings, tmp_path):
    tracking.configure(settings)
    assert mlflow.get_tracking_uri() == settings.tracking_uri
    assert settings.mlflow_db.exists()
    later = get_settings()
    assert later.embedded
    other = get_settings(workspace=tmp_path / "other")
    assert other.tracking_uri == f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"


def test_configure_is_idempotent(settings):
    first = tracking.configure(settings)
    assert tracking.configure(settings) == first
    experiments = tracking.client(settings).search_experiments()
    assert [e.name for e in experiments].count(settings.experiment_name) == 1
