"""Retraining: the new data version (deduplicated, held-out cases), the challenger, the gate, lineage."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_kit import capture, registry, retrain, tracking
from mlops_kit.compare import promote_challenger
from mlops_kit.data import prepare
from mlops_kit.registry import CHAMPION, champion_version
from mlops_kit.simulator import traffic
from mlops_kit.simulator.reviewer import label_with_simulator_truth
from mlops_kit.simulator.shifts import TRUTH
from mlops_kit.store.predictions.entry import LogEntry
from mlops_kit.store.predictions.writer import PredictionLog
from mlops_kit.talk import loop
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import run_cli, shadow_log

FAST = ["logistic_regression"]


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Records as labelled cases: the inputs and a `label` column holding their true class."""
    return frame.assign(label=frame[TRUTH])


def test_new_data_adds_only_new_cases_and_holds_some_out(settings):
    base = prepare(settings.table, settings, write=False)
    season = traffic.season_records(settings)
    shifted = traffic.draw_traffic(season, 40, shift="calliper", seed=1)
    already_there = traffic.draw_traffic(season, 3, seed=2)  # unshifted: rows of the eval season
    cases = labelled(pd.concat([shifted, shifted.head(5), already_there], ignore_index=True))

    new = retrain.build_training_data(base, cases, holdout=0.3, seed=42, review_sets=["abc"])
    assert new.skipped == 5 + 3
    assert (new.added_train, new.added_eval) == (28, 12)
    prepared = new.prepared
    assert len(prepared.train) == len(base.train) + 28
    assert len(prepared.eval) == len(base.eval) + 12
    production = prepared.train[prepared.train[retrain.ORIGIN] == retrain.PRODUCTION]
    held_out = prepared.eval[prepared.eval[retrain.ORIGIN] == retrain.PRODUCTION]
    train_keys = set(retrain.record_keys(production, base.spec))
    eval_keys = set(retrain.record_keys(held_out, base.spec))
    assert not train_keys & eval_keys  # no case is both learnt from and evaluated on
    assert train_keys | eval_keys == set(retrain.record_keys(shifted, base.spec))
    assert prepared.card.split["parent_data_version"] == base.card.data_version
    assert prepared.card.split["production_eval_rows"] == 12
    # the retrained model accepts the same rows of the file: the file's other columns carry over
    assert prepared.card.other_columns == base.card.other_columns != {}
    assert prepared.card.record_key == base.card.record_key
    again = retrain.build_training_data(base, cases, holdout=0.3, seed=42, review_sets=["abc"])
    assert again.prepared.card.data_version == prepared.card.data_version != base.card.data_version


def test_cases_already_in_the_data_are_not_added_twice(settings):
    base = prepare(settings.table, settings, write=False)
    season = traffic.season_records(settings)
    first = retrain.build_training_data(
        base,
        labelled(traffic.draw_traffic(season, 20, shift="calliper", seed=1)),
        holdout=0.3,
        seed=1,
    )
    same_again = labelled(traffic.draw_traffic(season, 20, shift="calliper", seed=1))
    with pytest.raises(ValueError, match="none of the 20 labelled case"):
        retrain.build_training_data(first.prepared, same_again, holdout=0.3, seed=1)
    with pytest.raises(ValueError, match="at least 2 are needed"):
        retrain.build_training_data(base, same_again.head(1), holdout=0.3, seed=1)


def test_the_new_data_version_gets_its_own_catalogue_entry(settings):
    base = prepare(settings.table, settings)
    season = traffic.season_records(settings)
    cases = labelled(traffic.draw_traffic(season, 20, shift="scale", seed=3))
    new = retrain.build_training_data(base, cases, holdout=0.25, seed=1, review_sets=["r1"])
    card_path = retrain.write_training_data(new, settings)
    catalogue = json.loads((settings.data_dir / "catalog.json").read_text())
    versions = [e["data_version"] for e in catalogue]
    assert versions == [base.card.data_version, new.prepared.card.data_version]
    assert "20 labelled production case(s)" in catalogue[-1]["source"]
    lineage = json.loads((card_path.parent / "lineage.json").read_text())
    assert lineage["parent_data_version"] == base.card.data_version
    assert lineage["review_sets"] == ["r1"]
    loaded = retrain.load_data_version(settings, new.prepared.card.data_version)
    assert len(loaded.train) == len(new.prepared.train)
    assert (loaded.eval[retrain.ORIGIN] == retrain.PRODUCTION).sum() == new.added_eval


def serve_with_champion(settings, records: pd.DataFrame, prefix: str) -> None:
    """Score records with the real champion and log them as the API does (batches of 25)."""
    tracking.configure(settings)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    version = champion_version(settings)
    features = model.metadata.get_input_schema().input_names()
    records = records.assign(
        request_id=[f"{prefix}-{i // 25}" for i in range(len(records))],
        record_index=np.arange(len(records)) % 25,
    )
    log = PredictionLog(settings.store)
    log.start()
    for request_id, part in records.groupby("request_id", sort=False):
        out = model.predict(part[features])
        classes = [c[len("proba_") :] for c in out.columns if c.startswith("proba_")]
        log.submit(
            LogEntry.from_records(
                request_id=str(request_id),
                created_at=datetime.now(UTC),
                model_name=settings.model_name,
                model_version=str(version),
                records=part[features]
                .astype(object)
                .where(part[features].notna(), None)
                .to_dict("records"),
                predicted=out["predicted"].tolist(),
                confidence=out["confidence"].tolist(),
                probabilities=out[[f"proba_{c}" for c in classes]].to_numpy().tolist(),
                classes=classes,
                low_confidence=(out["confidence"] < settings.low_confidence).tolist(),
                low_confidence_threshold=settings.low_confidence,
            )
        )
    log.close()
    traffic.write_truth(traffic.truth_dir(settings) / f"{prefix}.csv", records, features, {})


@pytest.mark.slow
def test_retrain_promotes_a_better_challenger_and_records_lineage(settings):
    run_training_pipeline(settings, candidates=FAST)
    season = traffic.season_records(settings)
    serve_with_champion(settings, traffic.draw_traffic(season, 100, shift="calliper", seed=11), "a")
    review = capture.capture(settings)
    label_with_simulator_truth(settings, review)

    result = retrain.retrain(settings, candidates=FAST)
    d = result.decision
    assert d.promoted and d.version == "2" and d.previous_champion == "1"
    assert champion_version(settings) == "2"
    assert (
        result.challenger_scores["production_accuracy"]
        > result.champion_scores["production_accuracy"]
    )
    assert result.challenger_scores["eval_f1_macro"] > result.champion_scores["eval_f1_macro"]
    assert result.champion_scores["production_cases"] == result.new_data.added_eval > 0

    client = tracking.client(settings)
    tags = client.get_model_version(settings.model_name, "2").tags
    assert tags["data_version"] == result.new_data.prepared.card.data_version
    assert tags["parent_data_version"] == result.new_data.parent
    assert tags["review_sets"] == review.version
    assert tags["previous_champion"] == "1" and tags["pipeline"] == "retraining"
    run = client.get_run(result.run_id)
    assert run.data.tags["pipeline"] == "retraining" and run.data.tags["promoted"] == "true"
    assert run.data.metrics["challenger_production_accuracy"] == pytest.approx(
        result.challenger_scores["production_accuracy"]
    )
    steps = {r.data.tags.get("pipeline") for r in client.search_runs([run.info.experiment_id])}
    assert {"training", "capture", "labelling", "retraining"} <= steps
    table = result.comparison()
    assert table["model"].tolist() == ["champion v1", "challenger v2 (logistic_regression)"]
    share = result.champion_scores["production_low_confidence_share"]
    assert 0.0 < share <= 1.0  # the cases were captured for their low confidence
    lineage = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/data/lineage.json")
    assert lineage == result.new_data.lineage()
    card = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/data/data_card.json")
    assert card["data_version"] == result.new_data.prepared.card.data_version

    # nothing new labelled since: the same cases are not added again
    with pytest.raises(ValueError, match="is new"):
        retrain.retrain(settings, candidates=FAST)

    # notebook 04 shown again: the loop restarts from the season-only model, and replays the same
    start = loop.starting_champion(settings)
    assert (start.version, start.how) == ("1", "moved back from v2")
    assert champion_version(settings) == "1"
    assert client.get_model_version(settings.model_name, "1").tags["promotion_reason"] == (
        loop.RESTART_REASON
    )
    assert loop.starting_champion(settings).how == "already the champion"
    replay = retrain.retrain(settings, candidates=FAST)
    assert replay.decision.promoted and replay.decision.version == "3"
    assert replay.new_data.prepared.card.data_version == result.new_data.prepared.card.data_version


@pytest.mark.slow
def test_retrain_needs_a_champion_and_labelled_cases(settings):
    with pytest.raises(ValueError, match="quality gate must be between 0 and 1"):
        retrain.retrain(settings, quality_gate=1.5)  # checked before anything else
    with pytest.raises(ValueError, match="no champion"):
        retrain.retrain(settings)
    run_training_pipeline(settings, candidates=FAST)
    with pytest.raises(ValueError, match="no labelled cases yet"):
        retrain.retrain(settings)


@pytest.mark.slow
def test_shadow_first_holds_the_better_challenger_until_it_scored_live_traffic(settings):
    run_training_pipeline(settings, candidates=FAST)
    season = traffic.season_records(settings)
    serve_with_champion(settings, traffic.draw_traffic(season, 100, shift="calliper", seed=11), "a")
    label_with_simulator_truth(settings, capture.capture(settings))

    with pytest.raises(ValueError, match="there is no challenger"):
        promote_challenger(settings)
    result = retrain.retrain(settings, candidates=FAST, shadow_first=True)
    d = result.decision
    assert d.in_shadow and not d.promoted and d.version == "2"
    assert champion_version(settings) == "1"  # the client is still answered by v1
    assert registry.alias_version(settings, registry.CHALLENGER) == "2"
    assert registry.version_tags(settings, "2")["gate"] == "passed"
    assert ("promoted to champion", "not yet: challenger in shadow") in d.outcome_rows()

    with pytest.raises(ValueError, match="challenger v2 scored 0 live predictions in shadow"):
        promote_challenger(settings)
    refused = run_cli("compare", "--promote")
    assert refused.returncode == 2 and "fewer than 100" in refused.stderr
    assert champion_version(settings) == "1"

    shadow_log(settings, "2", 120)
    move = promote_challenger(settings)
    assert (move.from_version, move.to_version, move.by) == ("1", "2", "shadow")
    assert champion_version(settings) == "2"
    assert registry.alias_version(settings, registry.CHALLENGER) is None
    assert registry.version_tags(settings, "2")["promotion_reason"].startswith(
        "scored 120 live predictions in shadow"
    )


@pytest.mark.slow
def test_a_refused_challenger_is_never_promoted_from_the_shadow(settings):
    run_training_pipeline(settings, candidates=FAST)
    again = run_training_pipeline(settings, candidates=FAST)  # the same model: it does not beat v1
    assert not again.decision.promoted and not again.decision.in_shadow
    assert registry.alias_version(settings, registry.CHALLENGER) == "2"
    shadow_log(settings, "2", 120)
    with pytest.raises(ValueError, match="challenger v2 did not pass the gate"):
        promote_challenger(settings)
    assert champion_version(settings) == "1"
