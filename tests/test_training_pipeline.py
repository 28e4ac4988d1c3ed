"""The whole training pipeline: tracked runs, registration, and when the champion alias moves."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from mlops_kit import tracking
from mlops_kit.data import DataValidationError
from mlops_kit.registry import CHAMPION, champion_version, registry_table
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import table_spec

pytestmark = pytest.mark.slow  # real training, notebooks or server processes

WEAK = ["body_mass_g"]  # one measurement alone separates the species poorly (f1 ~0.65)
FAST = ["logistic_regression"]


def version_tags(settings, version: str) -> dict[str, str]:
    return tracking.client(settings).get_model_version(settings.model_name, version).tags


def run_count(settings) -> int:
    client = tracking.client(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    return len(client.search_runs([experiment.experiment_id])) if experiment else 0


def test_running_the_pipeline_twice_keeps_the_first_champion(settings):
    first = run_training_pipeline(settings)
    assert first.decision.promoted
    assert first.decision.version == "1"
    assert champion_version(settings) == "1"

    second = run_training_pipeline(settings)
    assert second.decision.version == "2"
    assert not second.decision.promoted
    assert second.decision.previous_champion == "1"
    assert second.decision.champion_version == "1"
    assert second.decision.champion_score == pytest.approx(first.decision.score)
    assert "does not beat champion v1" in second.decision.reason
    assert champion_version(settings) == "1"
    tags = version_tags(settings, "2")
    assert tags["gate"] == "refused"
    assert "does not beat" in tags["gate_reason"]

    table = registry_table(settings)
    assert list(table["version"]) == [1, 2]
    assert list(table["aliases"]) == ["champion", "challenger"]
    assert list(table["gate"]) == ["passed", "refused"]
    # each pipeline run is one parent run with one nested run per candidate
    assert run_count(settings) == 2 * (1 + 3)
    parent = tracking.client(settings).get_run(second.run_id)
    assert parent.data.tags["promoted"] == "false"
    assert parent.data.tags["registered_version"] == "2"


def test_pipeline_run_keeps_its_evidence_in_mlflow(settings, tmp_path):
    result = run_training_pipeline(settings, candidates=FAST)
    client = tracking.client(settings)
    run = client.get_run(result.run_id)
    assert run.data.params["quality_gate"] == "0.9"
    assert run.data.params["split"] == "date_egg"
    assert run.data.tags["data_version"] == result.prepared.card.data_version
    assert run.data.metrics["best_eval_f1_macro"] == pytest.approx(result.best.metrics["f1_macro"])
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"gate_decision.json", "data", "plots", "candidates.json"} <= artifacts
    card = json.loads(
        Path(
            client.download_artifacts(result.run_id, "data/data_card.json", str(tmp_path))
        ).read_text()
    )
    assert card == json.loads(json.dumps(result.prepared.card.to_dict()))
    gate = json.loads(
        Path(
            client.download_artifacts(result.run_id, "gate_decision.json", str(tmp_path))
        ).read_text()
    )
    assert gate["promoted"] is True and gate["reason"] == result.decision.reason
    child = client.get_run(result.best.run_id)
    assert child.data.tags["mlflow.parentRunId"] == result.run_id
    assert child.data.metrics["eval_f1_macro"] == pytest.approx(result.best.metrics["f1_macro"])
    version = result.prepared.card.data_version
    for logged in (run, child):  # the pipeline's run and each candidate's name the tables used
        inputs = {
            i.dataset.name: {t.value for t in i.tags if t.key == "mlflow.data.context"}
            for i in logged.inputs.dataset_inputs
        }
        assert inputs == {f"train-{version}": {"training"}, f"eval-{version}": {"evaluation"}}
    # MLflow's UI opens the kit's experiment in its model-training view, not the GenAI one
    experiment = client.get_experiment(result.experiment_id)
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    plots = {a.path for a in client.list_artifacts(result.best.run_id, "plots")}
    assert plots == {"plots/confusion_matrix.png", "plots/confidence_histogram.png"}
    summary = dict(result.summary().itertuples(index=False))
    assert summary["promoted to champion"] == "yes"
    assert summary["champion now"] == "v1"


def test_an_experiment_made_before_the_kind_tag_gets_it(settings):
    mlflow.set_tracking_uri(settings.tracking_uri)
    settings.workspace.mkdir(parents=True)
    old = mlflow.MlflowClient().create_experiment(settings.experiment_name)

    assert tracking.configure(settings) == old
    tags = tracking.client(settings).get_experiment(old).tags
    assert tags[tracking.EXPERIMENT_KIND_TAG] == tracking.EXPERIMENT_KIND
    # MLflow 3.17's UI picks its view from the page address (or a switch kept in the browser)
    url = tracking.ui_url(settings, "http://127.0.0.1:5000/")
    assert url == f"http://127.0.0.1:5000/#/experiments/{old}/runs?workflowType=machine_learning"


@pytest.mark.parametrize("gate", [1.01, -0.1])
def test_gate_outside_zero_to_one_is_invalid(settings, gate):
    with pytest.raises(ValueError, match="quality gate"):
        run_training_pipeline(settings, quality_gate=gate)
    assert not settings.mlflow_db.exists()


def test_unknown_gate_metric_or_candidate_is_invalid(settings):
    with pytest.raises(ValueError, match="gate metric"):
        run_training_pipeline(settings, gate_metric="precision")
    with pytest.raises(ValueError, match="svm"):
        run_training_pipeline(settings, candidates=["svm"])
    assert not settings.mlflow_db.exists()


def test_gate_refuses_a_model_below_it_and_keeps_the_champion(settings):
    run_training_pipeline(settings, table_spec(features=WEAK), candidates=FAST, quality_gate=0.0)
    assert champion_version(settings) == "1"
    refused = run_training_pipeline(
        settings, table_spec(features=WEAK), candidates=FAST, quality_gate=0.99
    )
    assert refused.decision.score < 0.99
    assert not refused.decision.promoted
    assert "below the quality gate (0.9900)" in refused.decision.reason
    assert champion_version(settings) == "1"
    assert version_tags(settings, "2")["gate"] == "refused"
    assert version_tags(settings, "2")["gate_threshold"] == "0.9900"


def test_first_model_below_the_gate_gets_no_champion(settings):
    result = run_training_pipeline(
        settings, table_spec(features=WEAK), candidates=FAST, quality_gate=0.99
    )
    assert not result.decision.promoted
    assert result.decision.version == "1"
    assert champion_version(settings) is None


def test_a_better_model_becomes_champion(settings):
    weak = run_training_pipeline(
        settings, table_spec(features=WEAK), candidates=FAST, quality_gate=0.0
    )
    assert weak.decision.promoted
    strong = run_training_pipeline(settings, candidates=FAST)
    assert strong.decision.promoted
    assert strong.decision.score > weak.decision.score
    assert strong.decision.champion_score == pytest.approx(weak.decision.score)
    assert "beats champion v1" in strong.decision.reason
    assert champion_version(settings) == "2"
    assert list(registry_table(settings)["aliases"]) == ["", "champion"]
    served = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    assert served.metadata.get_input_schema().input_names() == strong.prepared.spec.features


def test_bad_data_trains_and_registers_nothing(settings, penguins_raw, write_csv, tmp_path):
    with pytest.raises(DataValidationError):
        run_training_pipeline(settings, table_spec(data_path=tmp_path / "missing.csv"))
    assert not settings.mlflow_db.exists()

    run_training_pipeline(settings, candidates=FAST)
    runs_before = run_count(settings)
    penguins_raw.loc[0, "Flipper Length (mm)"] = "long"
    with pytest.raises(DataValidationError, match="flipper_length_mm"):
        run_training_pipeline(
            settings, table_spec(data_path=write_csv(penguins_raw)), candidates=FAST
        )
    assert run_count(settings) == runs_before
    assert list(registry_table(settings)["version"]) == [1]
    assert champion_version(settings) == "1"


def test_users_own_csv_end_to_end(settings, iris_csv, iris_features):
    result = run_training_pipeline(
        settings,
        table_spec(data_path=iris_csv, target="Kind", features=iris_features, split_column=None),
    )
    assert result.prepared.card.split["by"] == "random"
    assert result.decision.promoted
    assert result.decision.score > 0.9
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    records = pd.DataFrame(
        {"sepal_length": [5.0, 7.0], "petal_width": [0.3, 2.3], "garden": ["north", None]}
    )
    out = model.predict(records)
    assert list(out["predicted"]) == ["setosa", "virginica"]
    assert list(out.columns) == [
        "predicted",
        "confidence",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]


def test_champion_of_another_table_is_not_replaced(settings, iris_csv, iris_features):
    run_training_pipeline(settings, candidates=FAST)
    other = run_training_pipeline(
        settings,
        table_spec(data_path=iris_csv, target="Kind", features=iris_features, split_column=None),
        candidates=FAST,
    )
    assert not other.decision.promoted
    assert "cannot be evaluated on this data (it needs bill_length_mm" in other.decision.reason
    assert champion_version(settings) == "1"
