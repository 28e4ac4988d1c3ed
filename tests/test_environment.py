"""Symmetry between environments: a model's recorded Python and packages against this environment."""

from __future__ import annotations

import platform
import shutil
from importlib.metadata import version
from pathlib import Path

import mlflow
import pytest

from mlops_kit.candidate_log import pip_requirements
from mlops_kit.environment import (
    check_model_dir,
    compare_environment,
    difference,
    environment_table,
    summary,
)
from mlops_kit.talk import screen
from tests.helpers import other_minor, other_patch, pin_in_model

RETRAIN = "or retrain the model in this environment"


@pytest.fixture
def model_dir(use_trained, tmp_path: Path) -> Path:
    """The champion's MLflow model directory as the registry holds it, copied to edit freely."""
    name = use_trained.settings.model_name
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}@champion", dst_path=str(tmp_path / "download")
    )
    return Path(shutil.copytree(local, tmp_path / "model"))


def test_a_model_trained_here_matches_python_and_every_pinned_package(model_dir: Path) -> None:
    check = check_model_dir(model_dir)

    assert check.match
    assert check.python.model == check.python.here == platform.python_version()
    assert [p.name for p in check.packages] == [r.split("==")[0] for r in pip_requirements()]
    assert all(p.model == p.here == version(p.name) and p.note is None for p in check.packages)
    assert summary(check).startswith("Python and the recorded packages (5) match")


def test_without_python_env_yaml_the_python_version_comes_from_mlmodel(model_dir: Path) -> None:
    (model_dir / "python_env.yaml").unlink()

    assert check_model_dir(model_dir).python.model == platform.python_version()


def test_another_minor_version_of_a_package_does_not_match_and_names_the_fix(
    model_dir: Path,
) -> None:
    here = version("scikit-learn")
    pin_in_model(model_dir, "scikit-learn", other_minor(here))

    check = check_model_dir(model_dir)

    assert not check.match
    [bad] = check.mismatches()
    assert (bad.name, bad.model, bad.here) == ("scikit-learn", other_minor(here), here)
    fix = f"install scikit-learn=={other_minor(here)} here, {RETRAIN}"
    assert summary(check) == (
        f"scikit-learn {other_minor(here)} (training) vs {here} (here): "
        f"minor version differs: {fix}"
    )
    assert check.as_dict()["match"] is False


def test_a_patch_difference_matches_with_a_note(model_dir: Path) -> None:
    here = version("numpy")
    pin_in_model(model_dir, "numpy", other_patch(here))

    check = check_model_dir(model_dir)

    assert check.match
    [numpy] = [p for p in check.packages if p.name == "numpy"]
    assert (numpy.model, numpy.here, numpy.match) == (other_patch(here), here, True)
    assert numpy.note == "only the patch version differs"


def test_another_python_minor_or_a_missing_package_does_not_match() -> None:
    major, minor, _ = platform.python_version_tuple()
    other = f"{major}.{int(minor) + 1}.0"

    check = compare_environment(other, ["numpy==" + version("numpy"), "not-a-real-package==1.0"])

    assert [(p.name, p.model, p.here) for p in check.mismatches()] == [
        ("python", other, platform.python_version()),
        ("not-a-real-package", "1.0", None),
    ]
    assert check.python.note == f"minor version differs: use Python {other} here, {RETRAIN}"
    assert check.packages[1].note == (
        f"not installed here: install not-a-real-package==1.0 here, {RETRAIN}"
    )


@pytest.mark.parametrize(
    ("model", "here", "how"),
    [
        ("1.9.1", "1.9.1", None),
        ("1.9", "1.9.0", None),
        ("1.9.0", "1.9.1", "patch"),
        ("1.8.1", "1.9.1", "minor"),
        ("2.0.0", "1.9.1", "major"),
    ],
)
def test_how_far_two_versions_are(model: str, here: str, how: str | None) -> None:
    assert difference(model, here) == how


def test_the_table_shows_every_row_and_reads_in_portuguese() -> None:
    here = version("scikit-learn")
    check = compare_environment(platform.python_version(), [f"scikit-learn=={other_minor(here)}"])

    table = environment_table(check)
    shown = screen.show(table)

    assert list(table.columns) == ["package", "trained with", "here", "match", "note"]
    assert table["package"].tolist() == ["python", "scikit-learn"]
    assert list(shown.columns) == ["pacote", "treinado com", "aqui", "confere", "observação"]
    assert shown.iloc[1]["confere"] == "não"
    assert shown.iloc[1]["observação"] == (
        f"versão minor difere: instale scikit-learn=={other_minor(here)} aqui, "
        "ou retreine o modelo neste ambiente"
    )
    assert environment_table(check.as_dict()).equals(table)  # the API's JSON gives the same table
