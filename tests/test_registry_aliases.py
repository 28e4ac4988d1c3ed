"""Moving the champion alias by hand: promote and rollback, with the reason recorded on the version."""

from __future__ import annotations

import pytest

from mlops_kit import tracking
from mlops_kit.registry import (
    CHAMPION,
    champion_version,
    promote,
    registry_table,
    retire_champion,
    rollback,
)
from mlops_kit.training_pipeline import run_training_pipeline

pytestmark = pytest.mark.slow  # real training, notebooks or server processes


@pytest.fixture
def two_versions(settings):
    """v1 is champion (first run), v2 was refused by the gate (equal, not better)."""
    run_training_pipeline(settings, candidates=["logistic_regression"])
    run_training_pipeline(settings, candidates=["logistic_regression"])
    return settings


def _version(settings, number: str):
    return tracking.client(settings).get_model_version(settings.model_name, number)


def test_promote_moves_the_alias_and_records_why(two_versions):
    move = promote(two_versions, 2, "presenter wants v2 on stage")

    assert (move.from_version, move.to_version, move.by) == ("1", "2", "manual")
    assert champion_version(two_versions) == "2"
    tags = _version(two_versions, "2").tags
    assert tags["promotion_reason"] == "presenter wants v2 on stage"
    assert tags["promoted_by"] == "manual"
    assert tags["previous_champion"] == "1"


def test_rollback_restores_the_previous_champion_and_marks_the_bad_one(two_versions):
    promote(two_versions, 2, "try v2")
    move = rollback(two_versions, "smoke test failed")

    assert (move.from_version, move.to_version, move.by) == ("2", "1", "rollback")
    assert champion_version(two_versions) == "1"
    bad = _version(two_versions, "2").tags
    assert bad["rolled_back"] == "true" and bad["rollback_reason"] == "smoke test failed"
    client = tracking.client(two_versions)
    assert client.get_model_version_by_alias(two_versions.model_name, CHAMPION).version in (1, "1")


def test_rollback_with_no_earlier_champion_is_refused(two_versions):
    with pytest.raises(ValueError, match="nothing to roll back to"):
        rollback(two_versions, "no history")
    assert champion_version(two_versions) == "1"


@pytest.mark.parametrize(
    ("version", "reason", "message"),
    [(9, "x", "has no version 9"), (1, "x", "already the champion"), (2, "  ", "needs a reason")],
)
def test_bad_promotions_are_refused_and_change_nothing(two_versions, version, reason, message):
    with pytest.raises(ValueError, match=message):
        promote(two_versions, version, reason)
    assert champion_version(two_versions) == "1"


def test_rollback_without_any_champion_is_refused(settings):
    with pytest.raises(ValueError, match="no champion to roll back"):
        rollback(settings, "empty registry")


def test_retiring_the_champion_keeps_the_version_and_the_reason(two_versions):
    with pytest.raises(ValueError, match="needs a reason"):
        retire_champion(two_versions, " ")
    assert retire_champion(two_versions, "notebook 02 starts its story") == "1"
    assert champion_version(two_versions) is None
    assert _version(two_versions, "1").tags["retired_reason"] == "notebook 02 starts its story"
    assert retire_champion(two_versions, "again") is None  # nothing left to retire
    # the next run of the pipeline is promoted: there is no champion to beat
    again = run_training_pipeline(two_versions, candidates=["logistic_regression"])
    assert again.decision.promoted and champion_version(two_versions) == "3"
    shown = registry_table(two_versions, versions=["1", "3"])
    assert shown["version"].tolist() == [1, 3] and shown["aliases"].tolist() == ["", CHAMPION]
