"""CD: the smoke test against a real API process, and the rollback when a broken model is promoted."""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import pytest

from mlops_kit import registry, tracking
from mlops_kit.config import Settings
from mlops_kit.delivery import deploy_smoke
from mlops_kit.registry import champion_version
from mlops_kit.talk.broken import register_broken_candidate
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import other_minor, pin_in_model, run_cli

pytestmark = pytest.mark.slow  # real training, notebooks or server processes


@pytest.fixture
def champion(settings):
    """A registry whose champion (v1) is a good model."""
    run_training_pipeline(settings, candidates=["logistic_regression"])
    return settings


def register_trained_elsewhere(settings: Settings, package: str, pinned: str) -> str:
    """The champion's model as another environment would record it (the package pinned to another
    version), registered and made champion by hand; its version."""
    tracking.configure(settings)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{settings.model_name}@champion", dst_path=tmp
            )
        )
        pin_in_model(local, package, pinned)
        with mlflow.start_run(run_name="trained-elsewhere") as run:
            mlflow.log_artifacts(str(local), "model")
    new = registry.register(settings, f"runs:/{run.info.run_id}/model", {"candidate": "elsewhere"})
    registry.promote(settings, new, "trained on another machine")
    return new


def test_a_good_champion_passes_the_smoke_test(champion):
    result = deploy_smoke(champion)

    assert result.ok, result.lines()
    assert [c.name for c in result.checks] == ["health", "version", "environment", "prediction"]
    assert result.rollback is None
    assert champion_version(champion) == "1"
    assert result.environment["match"] is True
    table = result.environment_table()
    assert table["package"].tolist()[:3] == ["python", "mlflow", "scikit-learn"]
    assert table["match"].all()
    lines = result.lines()
    assert "environment, trained with -> here:" in lines
    sklearn = version("scikit-learn")
    assert any(line.split() == ["ok", "scikit-learn", sklearn, "->", sklearn] for line in lines)


def test_a_model_from_another_environment_is_refused_naming_the_package_and_the_fix(champion):
    here = version("scikit-learn")
    elsewhere = register_trained_elsewhere(champion, "scikit-learn", other_minor(here))
    assert (elsewhere, champion_version(champion)) == ("2", "2")

    result = deploy_smoke(champion)

    assert not result.ok
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    fix = (
        f"install scikit-learn=={other_minor(here)} here, or retrain the model in this environment"
    )
    assert failed == {
        "environment": f"scikit-learn {other_minor(here)} (training) vs {here} (here): "
        f"minor version differs: {fix}"
    }  # the model itself loads and answers: only the environment is wrong
    assert (result.rollback.from_version, result.rollback.to_version) == ("2", "1")
    assert champion_version(champion) == "1"
    assert result.environment_table()["match"].tolist().count(False) == 1


def test_a_broken_champion_is_rolled_back_and_the_previous_one_serves(champion):
    broken = register_broken_candidate(champion, "hotfix promoted by hand")
    assert champion_version(champion) == broken == "2"

    result = deploy_smoke(champion)

    assert not result.ok
    assert result.rollback is not None
    assert (result.rollback.from_version, result.rollback.to_version) == ("2", "1")
    assert result.serving_after == "1"  # the API picked up the restored champion, no restart
    assert champion_version(champion) == "1"
    tags = tracking.client(champion).get_model_version(champion.model_name, "2").tags
    assert tags["rolled_back"] == "true" and "smoke test failed" in tags["rollback_reason"]


def test_nothing_to_deploy_is_a_clear_error(settings):
    with pytest.raises(ValueError, match="no champion to deploy"):
        deploy_smoke(settings)


def test_cli_exits_nonzero_after_rolling_back(champion):
    register_broken_candidate(champion, "bad release")
    result = run_cli("deploy-smoke")

    assert result.returncode == 1
    assert "rolled back: champion v2 -> v1" in result.stdout
    assert "the API now serves v1" in result.stdout


def test_cli_refuses_a_model_from_another_environment(champion):
    here = version("scikit-learn")
    register_trained_elsewhere(champion, "scikit-learn", other_minor(here))

    result = run_cli("deploy-smoke", "--no-rollback")

    assert result.returncode == 1
    row = f"FAILED scikit-learn  {other_minor(here)} -> {here}  minor version differs"
    assert row in result.stdout
    assert f"install scikit-learn=={other_minor(here)} here" in result.stdout
