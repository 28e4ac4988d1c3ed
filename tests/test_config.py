"""Settings: where the kit keeps its state, how env vars and overrides steer it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from pydantic import ValidationError

from mlops_kit import tracking
from mlops_kit.config import PROJ_ROOT, TableSpec, get_settings, parse_names, settings_env


def test_embedded_store_lives_in_the_workspace(settings, tmp_path):
    workspace = tmp_path / "workspace"
    assert settings.workspace == workspace
    assert settings.runs_dir == tmp_path / "runs"
    assert settings.embedded
    assert settings.tracking_uri == f"sqlite:///{workspace / 'mlflow.db'}"
    assert settings.registry_uri == settings.tracking_uri
    assert settings.artifact_root == workspace / "mlartifacts"
    assert settings.data_dir == workspace / "data"


def test_no_table_given_is_none_everywhere(settings):
    # the data stage fills each in from the table it reads (tests/test_data.py)
    assert settings.table == TableSpec()
    assert settings.table.data_path is None and settings.table.features is None
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
    assert settings.features == ("bill_length_mm", "sex")
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
# all build the settings' TableSpec, where None is the only "not given".


@pytest.mark.parametrize(
    ("written", "column", "random"),
    [
        ("none", None, True),
        ("NONE", None, True),
        (" None ", None, True),
        (None, None, False),  # not given: the table's season column where it has one
        ("", None, False),
        ("  ", None, False),
        (" season ", "season", False),
        ("date_egg", "date_egg", False),
    ],
)
def test_a_split_column_means_the_same_however_it_is_written(written, column, random):
    table = get_settings(split_column=written).table
    assert (table.split_column, table.random_split) == (column, random)


def test_a_split_column_named_later_wins_over_a_random_split_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLOPS_KIT_SPLIT_COLUMN", "none")
    assert get_settings().table.random_split
    table = get_settings(split_column="date_egg").table  # a CLI flag over the environment
    assert (table.split_column, table.random_split) == ("date_egg", False)
    monkeypatch.setenv("MLOPS_KIT_RANDOM_SPLIT", "true")  # as a parent process passes it on
    monkeypatch.delenv("MLOPS_KIT_SPLIT_COLUMN")
    assert get_settings().table.random_split
    assert not get_settings(split_column="season").table.random_split


@pytest.mark.parametrize(
    ("written", "names"),
    [
        ("Sepal Length, Petal Width", ("Sepal Length", "Petal Width")),
        ("[Sepal Length, Petal Width]", ("Sepal Length", "Petal Width")),
        ('["od280/od315", "ash"]', ("od280/od315", "ash")),
        ([" ash ", "hue", ""], ("ash", "hue")),
        ("ash", ("ash",)),
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
    table = get_settings().table
    assert table.features == ("bill_length_mm", "sex")
    assert table.random_split and table.split_column is None
    for name in ("FEATURES", "SPLIT_COLUMN", "DATA_PATH", "TARGET"):
        monkeypatch.setenv(f"MLOPS_KIT_{name}", " ")  # empty: not given
    assert get_settings().table == TableSpec()
    monkeypatch.setenv("MLOPS_KIT_FEATURES", "[ash, hue")
    with pytest.raises(ValidationError, match="must look like"):
        get_settings()


def test_a_data_path_is_made_absolute_where_it_is_given(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wine.csv").write_text("a,b\n1,2\n")
    assert get_settings(data_path="wine.csv").table.data_path == tmp_path / "wine.csv"
    # a path that is not here is read from the repository's root, as the README's examples are
    shipped = get_settings(data_path="data/raw/penguins_raw.csv").table.data_path
    assert shipped == PROJ_ROOT / "data" / "raw" / "penguins_raw.csv"


def test_a_child_process_gets_the_same_data_parameters(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wine.csv").write_text("a,b\n1,2\n")
    parent = get_settings(data_path="wine.csv", split_column="none", features="ash, hue")
    env = settings_env(parent)
    assert env["MLOPS_KIT_RANDOM_SPLIT"] == "True"  # not left out: that would mean date_egg
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(PROJ_ROOT / "notebooks")  # where the notebooks' kernels run
    assert get_settings().table == parent.table
    assert parent.table == TableSpec(tmp_path / "wine.csv", None, ("ash", "hue"), None, True)
