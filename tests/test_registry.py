"""Model registry after one pipeline run: versions, aliases, gate tags; the gate's argument checks."""

from __future__ import annotations

import re

import pytest

from mlops_kit import tracking
from mlops_kit.cli import EXIT_BAD_INPUT
from mlops_kit.config import get_settings
from mlops_kit.registry import CHAMPION, champion_version, gate_rule, registry_table
from tests.helpers import run_cli


def test_first_run_registers_and_promotes_v1(trained):
    decision = trained.result.decision
    assert decision.promoted
    assert decision.version == "1"
    assert decision.champion_version == "1"
    assert decision.previous_champion is None
    assert "no champion yet" in decision.reason
    assert champion_version(trained.settings) == "1"


def test_version_carries_the_gate_decision(trained):
    client = tracking.client(trained.settings)
    version = client.get_model_version_by_alias(trained.settings.model_name, CHAMPION)
    result = trained.result
    assert version.tags["gate"] == "passed"
    assert version.tags["data_version"] == result.prepared.card.data_version
    assert version.tags["candidate"] == result.best.name
    assert version.tags["eval_f1_macro"] == f"{result.best.metrics['f1_macro']:.4f}"
    assert version.tags["gate_threshold"] == "0.9000"
    assert version.run_id == result.best.run_id
    assert version.description == result.decision.reason


def test_registry_table_shows_aliases(trained):
    table = registry_table(trained.settings)
    assert list(table["version"]) == [1]
    row = table.iloc[0]
    assert row["aliases"] == "champion"
    assert row["gate"] == "passed"
    assert row["data_version"] == trained.result.prepared.card.data_version
    assert row["candidate"] == trained.result.best.name


def test_empty_registry(settings):
    assert champion_version(settings) is None
    assert registry_table(settings).empty


@pytest.mark.parametrize(
    ("threshold", "metric", "message"),
    [
        (1.01, None, "quality gate must be between 0 and 1, not 1.01"),
        (-0.1, None, "quality gate must be between 0 and 1"),
        (float("nan"), None, "quality gate must be between 0 and 1"),
        (None, "precision", "gate metric must be one of accuracy, f1_macro, not 'precision'"),
        (None, "mean_confidence", "gate metric must be one of"),
    ],
)
def test_gate_rule_refuses_what_makes_no_sense(settings, threshold, metric, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gate_rule(settings, threshold, metric)


def test_gate_rule_takes_the_settings_unless_given(settings, monkeypatch):
    assert gate_rule(settings) == (0.9, "f1_macro")
    assert gate_rule(settings, 0.0, "accuracy") == (0.0, "accuracy")
    monkeypatch.setenv("MLOPS_KIT_GATE_METRIC", "recall")
    with pytest.raises(ValueError, match="not 'recall'"):
        gate_rule(get_settings())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["train", "--gate", "1.5"], "quality gate must be between 0 and 1"),
        (["retrain", "--metric", "precision"], "gate metric must be one of"),
    ],
)
def test_cli_refuses_a_bad_gate_before_any_work(settings, command, message):
    done = run_cli(*command)
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    assert message in done.stderr
    assert not settings.mlflow_db.exists()
