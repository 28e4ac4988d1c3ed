"""The command line (`python -m mlops_kit`): output, exit codes and error messages."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mlops_kit.cli import EXIT_BAD_INPUT, EXIT_BUSY, EXIT_GATE_REFUSED, app
from mlops_kit.data import prepare
from mlops_kit.store.lock import workspace_lock
from tests.helpers import run_cli


def test_prepare_prints_the_data_version(settings, tmp_path):
    expected = prepare(settings.table, settings, write=False).card.data_version
    done = run_cli("prepare", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"data version   {expected}" in done.stdout
    assert "344 raw -> 342 clean" in done.stdout
    assert (settings.data_dir / expected / "card.json").exists()


def test_prepare_with_a_missing_file_exits_2(settings, tmp_path):
    done = run_cli("prepare", "--data", "missing.csv", cwd=tmp_path)
    assert done.returncode == EXIT_BAD_INPUT == 2
    assert "data file not found" in done.stderr
    assert "missing.csv" in done.stderr
    assert "data version" not in done.stdout


@pytest.mark.slow
def test_train_refused_by_the_gate_exits_3(settings, tmp_path):
    done = run_cli(
        "train", "--gate", "0.99", "--features", "body_mass_g", "--fail-on-refusal", cwd=tmp_path
    )
    assert done.returncode == EXIT_GATE_REFUSED == 3, done.stderr
    assert "below the quality gate" in done.stdout
    status = run_cli("status", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "(no champion yet)" in status.stdout


@pytest.mark.parametrize(
    "command",
    [
        "prepare",
        *(pytest.param(c, marks=pytest.mark.slow) for c in ("train", "retrain", "capture")),
    ],
)
def test_a_command_that_finds_the_workspace_busy_exits_75_naming_the_holder(
    settings, tmp_path, command
):
    with workspace_lock(settings, "a test holding the lock"):
        # another command, not a child of this process (a child would share the hold)
        done = run_cli(command, cwd=tmp_path, MLOPS_KIT_LOCK_TIMEOUT="0.5", MLOPS_KIT_LOCK_HELD="")
    assert done.returncode == EXIT_BUSY == 75, done.stderr
    assert "the workspace is busy: a test holding the lock (pid " in done.stderr
    assert "wait for it to finish and run this again" in done.stderr
    assert not settings.mlflow_db.exists() and not settings.data_dir.exists()


def test_status_prints_the_champion_version(trained, tmp_path):
    done = run_cli("status", cwd=tmp_path, MLOPS_KIT_WORKSPACE=str(trained.settings.workspace))
    assert done.returncode == 0, done.stderr
    assert f"{trained.settings.model_name}@champion -> version 1" in done.stdout


# Faster in-process checks of the same commands.


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def test_status_on_a_fresh_workspace_creates_nothing(cli, settings):
    result = cli.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "(no champion yet)" in result.stdout
    assert not settings.mlflow_db.exists()


def test_bad_value_in_a_csv_is_reported_with_its_column(cli, settings, penguins_raw, write_csv):
    penguins_raw.loc[2, "Culmen Depth (mm)"] = "deep"
    result = cli.invoke(app, ["prepare", "--data", str(write_csv(penguins_raw))])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "bill_depth_mm" in result.stderr
    assert "'deep'" in result.stderr


def test_invalid_gate_exits_2_and_tracks_nothing(cli, settings):
    result = cli.invoke(app, ["train", "--gate", "1.5"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "quality gate must be between 0 and 1" in result.stderr
    assert not settings.mlflow_db.exists()


def test_users_csv_with_options(cli, settings, iris_csv):
    result = cli.invoke(
        app,
        [
            "prepare",
            "--data",
            str(iris_csv),
            "--target",
            "Kind",
            "--features",
            "Sepal Length, Petal Width",
            "--split-column",
            "none",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "random: 67 train / 23 eval" in result.stdout


# The data options mean what the notebook parameters and the MLOPS_KIT_* settings mean.


def test_a_users_table_without_a_split_column_gets_a_random_split(cli, settings, iris_csv):
    # the penguins' season column (date_egg) is the default of the shipped table only
    result = cli.invoke(
        app,
        ["prepare", "--data", str(iris_csv), "--target", "Kind", "--features", "[Sepal Length]"],
    )
    assert result.exit_code == 0, result.output
    assert "random: 67 train / 23 eval" in result.stdout


@pytest.mark.parametrize("written", ["NONE", " none", "None"])
def test_split_column_none_is_a_random_split_on_the_penguins(cli, settings, written):
    result = cli.invoke(app, ["prepare", "--split-column", written])
    assert result.exit_code == 0, result.output
    assert "split          random:" in result.stdout
    assert "split          date_egg:" in cli.invoke(app, ["prepare"]).stdout  # the default


def test_the_split_column_setting_none_is_a_random_split(cli, settings, monkeypatch):
    monkeypatch.setenv("MLOPS_KIT_SPLIT_COLUMN", "none")
    result = cli.invoke(app, ["prepare"])
    assert result.exit_code == 0, result.output
    assert "split          random:" in result.stdout


def test_a_split_column_the_user_names_must_exist(cli, settings, iris_csv):
    result = cli.invoke(
        app,
        ["prepare", "--data", str(iris_csv), "--target", "Kind", "--features", "Sepal Length"]
        + ["--split-column", "date_egg"],
    )
    assert result.exit_code == EXIT_BAD_INPUT
    assert "split column 'date_egg' not found" in result.stderr


def test_features_as_the_settings_write_them(cli, settings, iris_csv, monkeypatch):
    monkeypatch.setenv("MLOPS_KIT_DATA_PATH", str(iris_csv))
    monkeypatch.setenv("MLOPS_KIT_TARGET", "Kind")
    monkeypatch.setenv("MLOPS_KIT_FEATURES", "Sepal Length, Garden")
    result = cli.invoke(app, ["prepare"])
    assert result.exit_code == 0, result.output
    card = json.loads(next(settings.data_dir.glob("*/card.json")).read_text())
    assert card["numeric_features"] == ["sepal_length"]
    assert card["categorical_features"] == ["garden"]


def test_unreadable_features_exit_2_saying_how_to_write_them(cli, settings):
    result = cli.invoke(app, ["prepare", "--features", "[island, sex"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "must look like [a, b] or 'a, b'" in result.stderr


def test_a_users_table_without_features_is_not_given_the_penguin_ones(cli, settings, write_csv):
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    table = wine.data.assign(cultivar=[f"cultivar_{t + 1}" for t in wine.target])
    result = cli.invoke(app, ["prepare", "--data", str(write_csv(table)), "--target", "cultivar"])
    assert result.exit_code == 0, result.output
    assert "island" not in result.output
    card = json.loads(next(settings.data_dir.glob("*/card.json")).read_text())
    assert len(card["numeric_features"]) == 13  # every wine measurement
    assert card["split"]["by"] == "random"
