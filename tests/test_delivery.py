"""CD: the smoke test against a real API process, and the rollback when a broken model is promoted."""

from __future__ import annotations

import pytest

from mlops_kit import tracking
from mlops_kit.delivery import deploy_smoke
from mlops_kit.registry import champion_version
from mlops_kit.talk.broken import register_broken_candidate
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # real training, notebooks or server processes


@pytest.fixture
def champion(settings):
    """A registry whose champion (v1) is a good model."""
    run_training_pipeline(settings, candidates=["logistic_regression"])
    return settings


def test_a_good_champion_passes_the_smoke_test(champion):
    result = deploy_smoke(champion)

    assert result.ok, result.lines()
    assert [c.name for c in result.checks] == ["health", "version", "prediction"]
    assert result.rollback is None
    assert champion_version(champion) == "1"


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
