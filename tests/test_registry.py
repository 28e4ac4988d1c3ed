"""Model registry after one pipeline run: versions, aliases, gate tags and champion scoring."""

from __future__ import annotations

import pytest

from mlops_kit import tracking
from mlops_kit.data import prepare
from mlops_kit.registry import CHAMPION, champion_version, registry_table, score_model


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


def test_champion_scores_the_same_on_the_same_data(use_trained):
    scores = score_model(
        f"models:/{use_trained.settings.model_name}@{CHAMPION}", use_trained.result.prepared
    )
    assert scores["f1_macro"] == pytest.approx(use_trained.result.best.metrics["f1_macro"])
    assert scores["accuracy"] == pytest.approx(use_trained.result.best.metrics["accuracy"])


def test_champion_cannot_be_scored_on_a_table_without_its_inputs(use_trained, settings):
    fewer = prepare(settings, features=["body_mass_g"], write=False)
    with pytest.raises(ValueError, match="bill_length_mm"):
        score_model(f"models:/{use_trained.settings.model_name}@{CHAMPION}", fewer)
