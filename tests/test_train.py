"""Training stage: the candidate pipelines, their scores and predictions with confidence."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_kit import candidate_log, train
from mlops_kit.candidate_log import input_example
from mlops_kit.confidence import predict_with_confidence
from mlops_kit.config import Settings
from mlops_kit.data import PreparedData, prepare
from mlops_kit.tracking import log_data_inputs
from mlops_kit.train import (
    CANDIDATES,
    CandidateResult,
    best_of,
    build_pipeline,
    candidates_table,
    train_candidates,
)

PROBA = ["proba_Adelie", "proba_Chinstrap", "proba_Gentoo"]
LOW = 0.7  # the review threshold the candidates' low-confidence share counts against


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    settings = Settings(workspace=tmp_path_factory.mktemp("train"))
    return prepare(settings.table, settings, write=False)


@pytest.fixture(scope="module")
def fitted(prepared: PreparedData) -> list[CandidateResult]:
    return train_candidates(prepared, low_confidence=LOW)


def test_every_candidate_fits_and_scores_well(fitted):
    assert [r.name for r in fitted] == list(CANDIDATES)
    assert len(CANDIDATES) == 3
    for result in fitted:
        assert result.metrics["f1_macro"] > 0.9, result.name
        assert 0.0 <= result.metrics["low_confidence_share"] <= 1.0
        assert result.params  # the classifier's hyper-parameters, for MLflow


def test_prediction_columns(fitted, prepared):
    for result in fitted:
        out = predict_with_confidence(result.pipeline, prepared.X_eval)
        assert list(out.columns) == ["predicted", "confidence", *PROBA]
        assert len(out) == len(prepared.X_eval)
        np.testing.assert_allclose(out["confidence"], out[PROBA].max(axis=1))
        np.testing.assert_allclose(out[PROBA].sum(axis=1), 1.0)
        assert (out["predicted"] == out[PROBA].idxmax(axis=1).str.removeprefix("proba_")).all()


def test_records_with_missing_values_still_get_a_prediction(fitted):
    records = pd.DataFrame(
        {
            "bill_length_mm": [47.5, np.nan, np.nan],
            "bill_depth_mm": [14.9, 18.1, np.nan],
            "flipper_length_mm": [217.0, 190.0, np.nan],
            "body_mass_g": [5000.0, 3700.0, np.nan],
            "island": ["Biscoe", "Dream", None],
            "sex": [None, "male", None],
        }
    )
    for result in fitted:
        out = predict_with_confidence(result.pipeline, records)
        assert len(out) == 3
        assert out["predicted"].notna().all()
        assert set(out["predicted"]) <= {"Adelie", "Chinstrap", "Gentoo"}
        assert out["predicted"][0] == "Gentoo", result.name  # a typical Gentoo without its sex


def test_unseen_category_is_not_an_error(fitted, prepared):
    records = prepared.X_eval.head(3).assign(island="Anvers")
    for result in fitted:
        assert len(predict_with_confidence(result.pipeline, records)) == 3


def test_unknown_candidate_names_the_choices(prepared):
    with pytest.raises(ValueError, match="logistic_regression"):
        build_pipeline("svm", prepared.spec)
    with pytest.raises(
        ValueError, match="unknown candidate.*svm.*choose from: logistic_regression"
    ):
        train_candidates(prepared, ["knn", "svm"], low_confidence=LOW)


def test_training_is_reproducible(prepared, fitted):
    again = train_candidates(prepared, ["random_forest"], low_confidence=LOW)
    assert again[0].metrics == next(r.metrics for r in fitted if r.name == "random_forest")


def test_best_of_and_table_order(fitted):
    scores = {"a": 0.8, "b": 0.95, "c": 0.95}
    results = [
        CandidateResult(n, fitted[0].pipeline, {"f1_macro": s, "accuracy": s}, fitted[0].scored)
        for n, s in scores.items()
    ]
    assert best_of(results, "f1_macro").name == "b"  # ties: the first listed
    assert list(candidates_table(results)["candidate"]) == ["b", "c", "a"]


def test_input_example_is_complete_raw_records(prepared):
    example = input_example(prepared)
    assert list(example.columns) == prepared.spec.features
    assert len(example) == 2
    assert example.notna().all().all()


def test_a_tiny_training_set_still_trains_every_candidate(tmp_path, write_csv) -> None:
    """KNN asks for 7 neighbours; a training set with fewer rows gets as many as there are.

    The data stage refuses tables this small (data.MIN_TRAIN_ROWS_PER_CLASS), so the training
    set is cut down after a table of an honest size was prepared.
    """
    from dataclasses import replace

    from tests.helpers import iris_like, table_spec

    path = write_csv(iris_like(rows_per_class=14), "small.csv")
    settings = Settings(workspace=tmp_path / "ws")
    small = prepare(
        table_spec(
            data_path=path,
            target="Kind",
            features=["Sepal Length", "Petal Width", "Garden"],
            split_column=None,
        ),
        settings,
        write=False,
    )
    tiny = replace(small, train=small.train.groupby("kind").head(2))
    assert len(tiny.X_train) < 7
    results = {r.name: r for r in train_candidates(tiny, low_confidence=LOW)}
    assert set(results) == set(CANDIDATES)
    assert results["knn"].params["n_neighbors"] == len(tiny.X_train)
    assert all(0 <= r.metrics["accuracy"] <= 1 for r in results.values())


def test_the_tables_are_logged_as_run_inputs_named_by_data_version(prepared, tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("inputs")
    with mlflow.start_run() as run:
        log_data_inputs(prepared)

    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    version = prepared.card.data_version
    logged = {
        i.dataset.name: (
            {t.value for t in i.tags if t.key == "mlflow.data.context"},
            json.loads(i.dataset.profile)["num_rows"],
        )
        for i in inputs
    }
    assert logged == {
        f"train-{version}": ({"training"}, len(prepared.train)),
        f"eval-{version}": ({"evaluation"}, len(prepared.eval)),
    }


def test_knn_learns_from_a_seeded_sample_of_a_large_table_and_says_so(
    prepared, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(train, "KNN_MAX_ROWS", 60)  # "large" for this table
    monkeypatch.setattr(train, "PROGRESS_ROWS", 50)
    [knn, logistic] = train_candidates(prepared, ["knn", "logistic_regression"], low_confidence=LOW)

    assert knn.pipeline.named_steps["classifier"].n_samples_fit_ == 60
    assert knn.note == f"knn learnt from a seeded sample of 60 of {len(prepared.X_train)} rows"
    assert logistic.note == ""  # the others learn from every row
    again = train_candidates(prepared, ["knn"], low_confidence=LOW)[0]
    assert again.metrics == knn.metrics  # the same sample every time
    shown = capsys.readouterr().err
    assert f"[train] knn: fitting on 60 rows ({knn.note})" in shown
    assert f"[train] logistic_regression: fitting on {len(prepared.X_train)} rows" in shown

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("note", artifact_location=str(tmp_path / "art"))
    )
    with mlflow.start_run():
        logged = candidate_log.log_candidate(knn, prepared)
    assert mlflow.get_run(logged.run_id).data.tags["note"] == knn.note
