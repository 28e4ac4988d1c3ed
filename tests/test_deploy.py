"""CD through environments: staging (smoke test + soak) before production, with real API processes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlops_kit import registry, tracking
from mlops_kit.config import ENVIRONMENTS, STAGING
from mlops_kit.deploy import (
    candidate_version,
    start_environment_apis,
    to_production,
    to_staging,
)
from mlops_kit.processes import free_port
from mlops_kit.services import start_api
from mlops_kit.talk.broken import register_broken_candidate
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import run_cli, shadow_log

pytestmark = pytest.mark.slow  # real training and server processes


def environment(name: str):
    """An environment as declared, on a free port (tests run side by side)."""
    return replace(ENVIRONMENTS[name], port=free_port())


@pytest.fixture
def trained(settings):
    """v1: trained, passed the gate, champion."""
    run_training_pipeline(settings, candidates=["logistic_regression"])
    return settings


def second_version(settings) -> str:
    """v2: the champion's model registered again, as a hotfix would be (not through the gate)."""
    return registry.register(settings, f"models:/{settings.model_name}/1", {"candidate": "hotfix"})


def version_tags(settings, version: str) -> dict[str, str]:
    return tracking.client(settings).get_model_version(settings.model_name, version).tags


def test_a_version_goes_through_staging_then_production(trained):
    v2 = second_version(trained)

    staged = to_staging(trained, environment("staging"), v2)
    assert staged.ok, staged.lines()
    assert [c.name for c in staged.checks] == [
        "health", "version", "environment", "prediction", "soak",
    ]  # fmt: skip
    assert "200 requests, 0 failed" in staged.checks[-1].detail
    assert registry.alias_version(trained, STAGING) == v2
    assert version_tags(trained, v2)["staging"] == "passed"
    assert registry.champion_version(trained) == "1"  # staging never touches production

    released = to_production(trained, environment("production"))  # the version in staging
    assert released.ok, released.lines()
    assert registry.champion_version(trained) == v2
    assert released.serving_after == v2
    assert version_tags(trained, v2)["promoted_by"] == "cd"


def test_a_broken_candidate_is_stopped_at_staging_and_never_reaches_production(trained):
    good = second_version(trained)
    assert to_staging(trained, environment("staging"), good).ok
    broken = register_broken_candidate(trained, "a hotfix nobody ran", make_champion=False)

    staged = to_staging(trained, environment("staging"), broken)
    assert not staged.ok
    assert "soak" not in [c.name for c in staged.checks]  # the smoke test stopped it first
    assert registry.alias_version(trained, STAGING) == good  # staging went back
    assert version_tags(trained, broken)["staging"] == "failed"
    with pytest.raises(ValueError, match=f"refused: v{broken} failed staging"):
        to_production(trained, environment("production"), broken)
    assert registry.champion_version(trained) == "1"


def test_production_refuses_a_version_staging_never_saw(trained):
    v2 = second_version(trained)
    with pytest.raises(ValueError, match="nothing is in staging"):
        to_production(trained, environment("production"))
    with pytest.raises(ValueError, match=f"v{v2} was never deployed to staging"):
        to_production(trained, environment("production"), v2)
    assert candidate_version(trained) == "1"  # the newest version the gate passed


def test_a_running_staging_api_follows_its_alias(trained):
    v2 = second_version(trained)
    env = environment("staging")
    assert registry.alias_version(trained, STAGING) is None  # the API starts with no model
    staging_settings = env.settings(trained).model_copy(update={"reload_interval": 0.5})
    with start_api(staging_settings, port=env.port, require_model=False) as api:
        result = to_staging(trained, env, v2)
        assert result.ok, result.lines()
        assert any("follows its alias" in note for note in result.notes)
        assert api.get("/health")["alias"] == STAGING
        assert api.get("/health")["model_version"] == v2


def test_running_environments_take_every_delivery_and_a_broken_one_is_stopped(trained):
    import httpx

    staging, production = environment("staging"), environment("production")
    with start_environment_apis(trained, staging, production):
        good = second_version(trained)
        assert to_staging(trained, staging, good).ok
        assert to_production(trained, production).ok
        broken = register_broken_candidate(trained, "a hotfix nobody ran", make_champion=False)
        stopped = to_staging(trained, staging, broken)
        # the staging API could not load it and kept serving the good one: the checks say so,
        # without waiting out the version check's timeout for a version that never loads
        assert not stopped.ok and stopped.serving_after == good
        failed = {c.name for c in stopped.checks if not c.ok}
        assert "version" in failed
        assert all("follows its alias" in note for note in stopped.notes)
        assert registry.alias_version(trained, STAGING) == good
        assert registry.champion_version(trained) == good
    for env in (staging, production):  # both stopped with the block
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{env.port}/health", timeout=2.0)


def test_the_cli_delivers_and_exits_non_zero_when_refused(trained):
    port = str(free_port())
    done = run_cli("deploy", "--env", "staging", "--port", port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deploy v1 to staging: passed" in done.stdout
    refused = run_cli("deploy", "--env", "production", "--version", "9", "--port", port)
    assert refused.returncode == 2
    assert "has no version 9" in refused.stderr and "Traceback" not in refused.stderr
    assert run_cli("deploy", "--env", "qa").returncode == 2


def test_production_can_require_the_version_to_have_run_in_shadow(trained):
    v2 = second_version(trained)
    assert to_staging(trained, environment("staging"), v2).ok
    with pytest.raises(ValueError, match=f"v{v2} scored 0 live predictions in shadow"):
        to_production(trained, environment("production"), require_shadow=True)
    shadow_log(trained, v2, 120)
    released = to_production(trained, environment("production"), require_shadow=True)
    assert released.ok and f"v{v2} scored 120 live predictions in shadow" in released.notes


def test_an_api_that_cannot_start_leaves_the_aliases_where_they_were(trained):
    import socket

    v2 = second_version(trained)
    with socket.socket() as taken:  # something else holds the environment's port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        staging = replace(ENVIRONMENTS["staging"], port=port)
        with pytest.raises(Exception):  # noqa: B017 - whatever the API's start raises
            to_staging(trained, staging, v2)
        assert registry.alias_version(trained, STAGING) is None
        assert to_staging(trained, environment("staging"), v2).ok
        production = replace(ENVIRONMENTS["production"], port=port)
        with pytest.raises(Exception):  # noqa: B017
            to_production(trained, production)
    assert registry.champion_version(trained) == "1"
