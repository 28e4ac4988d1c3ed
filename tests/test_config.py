"""Settings: where the kit keeps its state, how env vars and overrides steer it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from pydantic import ValidationError

from mlops_kit import tracking
from mlops_kit.config import (
    PENGUIN_FEATURES,
    PROJ_ROOT,
    get_settings,
    parse_names,
    parse_split_column,
    settings_env,
)


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


# One meaning for each data parameter: CLI flags, notebook parameters and MLOPS_KIT_* settings
# all go through config.parse_split_column and config.parse_names.


@pytest.mark.parametrize(
    ("written", "meaning"),
    [
        ("none", None),
        ("NONE", None),
        (" None ", None),
        ("null", None),
        (None, None),
        ("", ""),  # not given: the table's default split column
        (" season ", "season"),
        ("date_egg", "date_egg"),
    ],
)
def test_a_split_column_means_the_same_however_it_is_written(written, meaning):
    assert parse_split_column(written) == meaning


@pytest.mark.parametrize(
    ("written", "names"),
    [
        ("Sepal Length, Petal Width", ["Sepal Length", "Petal Width"]),
        ("[Sepal Length, Petal Width]", ["Sepal Length", "Petal Width"]),
        ('["od280/od315", "ash"]', ["od280/od315", "ash"]),
        ([" ash ", "hue", ""], ["ash", "hue"]),
        ("ash", ["ash"]),
        ("", None),
        (" , ", None),
        ([], None),
        (None, None),
    ],
)
def test_column_names_are_a_list_a_json_list_or_a_comma_list(written, names):
    assert parse_names(written) == names


def test_unreadable_column_names_are_refused_with_what_to_write():
    with pytest.raises(ValueError, match=r"must look like \[a, b\] or 'a, b'"):
        parse_names("[ash, hue")
    with pytest.raises(ValueError, match="expected column names"):
        parse_names(3)


def test_settings_read_the_data_parameters_as_the_cli_does(monkeypatch):
    monkeypatch.setenv("MLOPS_KIT_FEATURES", "bill_length_mm, sex")
    monkeypatch.setenv("MLOPS_KIT_SPLIT_COLUMN", "none")
    settings = get_settings()
    assert settings.features == ["bill_length_mm", "sex"]
    assert settings.split_column is None  # a seeded random split
    monkeypatch.setenv("MLOPS_KIT_FEATURES", "")
    monkeypatch.setenv("MLOPS_KIT_SPLIT_COLUMN", "")
    assert get_settings().features == PENGUIN_FEATURES  # empty: not given
    assert get_settings().split_column == "date_egg"
    monkeypatch.setenv("MLOPS_KIT_DATA_PATH", " ")
    monkeypatch.setenv("MLOPS_KIT_TARGET", "")
    assert get_settings().data_path == PROJ_ROOT / "data" / "raw" / "penguins_raw.csv"
    assert get_settings().target == "species"
    monkeypatch.setenv("MLOPS_KIT_FEATURES", "[ash, hue")
    with pytest.raises(ValidationError, match="must look like"):
        get_settings()


def test_a_child_process_gets_the_same_data_parameters(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wine.csv").write_text("a,b\n1,2\n")
    parent = get_settings(data_path="wine.csv", split_column="none", features="ash, hue")
    assert parent.data_path == tmp_path / "wine.csv"  # relative to the folder it was given in
    env = settings_env(parent)
    assert env["MLOPS_KIT_SPLIT_COLUMN"] == "none"  # not left out: that would mean date_egg
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(PROJ_ROOT / "notebooks")  # where the notebooks' kernels run
    child = get_settings()
    assert child.data_path == tmp_path / "wine.csv"
    assert child.split_column is None
    assert child.features == ["ash", "hue"]
