"""The API through TestClient: predict, batch, health, model info, docs, log, admin reload."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops_kit.config import Settings, get_settings
from mlops_kit.serving.app import create_app
from mlops_kit.store.predictions.window import read_predictions
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import table_spec


def varied(record: dict) -> list[dict]:
    """Three records: a male, a long-flippered bird from Biscoe, and one with unknown categories."""
    return [
        {**record, "sex": "male"},
        {**record, "island": "Biscoe", "bill_length_mm": 49.0, "flipper_length_mm": 221.0},
        {**record, "island": None, "sex": None, "bill_length_mm": 39.0, "body_mass_g": 3300.0},
    ]


def flush(client: TestClient) -> None:
    """Wait until the app's prediction log has written everything it was given."""
    assert client.app.state.predlog.flush(10)


def test_predict_one_record_answers_class_confidence_and_version(
    client: TestClient, record: dict
) -> None:
    response = client.post("/predict", json={**record, "sex": "female"})
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "penguins-classifier" and body["model_version"] == "1"
    [prediction] = body["predictions"]
    probabilities = prediction["probabilities"]
    assert set(probabilities) == {"Adelie", "Chinstrap", "Gentoo"}
    assert prediction["predicted"] == max(probabilities, key=probabilities.get)
    assert prediction["confidence"] == pytest.approx(max(probabilities.values()))
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert prediction["low_confidence"] == (prediction["confidence"] < 0.7)
    assert (prediction["model_name"], prediction["model_version"]) == ("penguins-classifier", "1")
    assert response.headers["x-model-version"] == "1"
    assert response.headers["x-request-id"] == body["request_id"]


def test_predictions_match_the_registered_model(
    client: TestClient, settings: Settings, record: dict
) -> None:
    """The API's fast scoring path gives what MLflow's own pyfunc predict gives."""
    records = varied(record)
    body = client.post("/predict", json=records).json()
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/1")
    frame = pd.DataFrame(records).reindex(columns=model.metadata.get_input_schema().input_names())
    expected = model.predict(frame)
    assert client.get("/model").json()["scoring"] == "accelerator"
    for prediction, (_, row) in zip(body["predictions"], expected.iterrows(), strict=True):
        assert prediction["predicted"] == row["predicted"]
        for name, p in prediction["probabilities"].items():
            assert p == pytest.approx(row[f"proba_{name}"], rel=1e-9)


def test_batch_keeps_order_and_allows_missing_categories(client: TestClient, record: dict) -> None:
    records = [
        {**record, "island": "Biscoe", "bill_length_mm": 49.0, "flipper_length_mm": 221.0},
        {**record, "sex": None},
        {k: v for k, v in record.items() if k != "island"},
    ]
    response = client.post("/predict", json=records)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    assert predictions[0]["predicted"] == "Gentoo"  # long flippers from Biscoe
    assert all(p["model_version"] == "1" for p in predictions)


def test_health_reports_the_loaded_model(client: TestClient, record: dict) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["model_loaded"] is True
    assert body["model_version"] == "1" and body["scoring"] in ("accelerator", "model")
    assert body["registry"]["reachable"] is True


def test_model_info_has_registry_facts_and_metrics(client: TestClient, record: dict) -> None:
    info = client.get("/model").json()
    assert (info["name"], info["version"], info["alias"]) == (
        "penguins-classifier",
        "1",
        "champion",
    )
    assert info["run_id"] and len(info["data_version"]) == 12
    assert info["candidate"] == "logistic_regression" and info["gate"] == "passed"
    assert {"eval_accuracy", "eval_f1_macro", "eval_mean_confidence"} <= set(info["metrics"])
    assert info["required"] == [
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
    ]
    assert info["categories"] == {
        "island": ["Biscoe", "Dream", "Torgersen"],
        "sex": ["female", "male"],
    }
    assert info["low_confidence_threshold"] == 0.7 and info["max_batch"] == 10_000
    assert 64 * 1024 < info["max_body_bytes"] < 10_000 * 2048  # from the fields, not a flat rate


def test_docs_show_a_working_example_from_the_model(client: TestClient, record: dict) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    content = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    example = content["examples"]["one record"]["value"]
    assert set(example) == {*record, "sex"}
    record = schema["components"]["schemas"]["Record"]
    assert record["additionalProperties"] is False
    assert record["properties"]["island"]["anyOf"][0]["enum"] == ["Biscoe", "Dream", "Torgersen"]
    # "Try it out" sends exactly the example: it must be accepted
    assert client.post("/predict", json=example).status_code == 200
    assert client.post("/predict", json=content["examples"]["batch"]["value"]).status_code == 200


def test_every_prediction_is_logged(client: TestClient, settings: Settings, record: dict) -> None:
    one = client.post("/predict", json={**record, "sex": "male"}, headers={"X-Request-ID": "req-1"})
    batch = client.post("/predict", json=[record, {**record, "body_mass_g": 5000.0}])
    assert one.status_code == batch.status_code == 200
    flush(client)
    log = read_predictions(settings)
    assert len(log) == 3
    first = log.iloc[0]
    assert first["request_id"] == "req-1" and first["model_version"] == "1"
    assert first["sex"] == "male" and first["bill_length_mm"] == record["bill_length_mm"]
    answer = one.json()["predictions"][0]
    assert first["predicted"] == answer["predicted"]
    assert first["confidence"] == pytest.approx(answer["confidence"])
    assert first["proba_Gentoo"] == pytest.approx(answer["probabilities"]["Gentoo"])
    assert bool(first["low_confidence"]) == answer["low_confidence"]
    assert list(log["record_index"]) == [0, 0, 1]
    assert (log["request_id"].iloc[1:] == batch.json()["request_id"]).all()
    assert log["created_at"].dt.tz is not None
    assert len(read_predictions(settings, last=1)) == 1


def test_each_logged_prediction_keeps_the_threshold_the_api_used(
    make_client: Callable[..., TestClient], record: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Monitoring reads from the log the threshold the API flagged with, not its own setting."""
    monkeypatch.setenv("MLOPS_KIT_LOW_CONFIDENCE", "0.55")
    client = make_client()
    rows = varied(record)
    one = client.post("/predict", json=rows)
    names = dict.fromkeys(name for row in rows for name in row)
    columns = client.post("/predict/columns", json={n: [r.get(n) for r in rows] for n in names})
    assert one.json()["low_confidence_threshold"] == columns.json()["low_confidence_threshold"]
    assert one.json()["low_confidence_threshold"] == 0.55
    flush(client)
    monkeypatch.setenv("MLOPS_KIT_LOW_CONFIDENCE", "0.9")  # the monitor's own setting differs
    log = read_predictions(Settings())
    assert len(log) == 6 and log["low_confidence_threshold"].tolist() == [0.55] * 6
    assert (log["low_confidence"] == (log["confidence"] < 0.55)).all()


def test_without_a_champion_the_api_says_so(
    make_client: Callable[..., TestClient], workspace: Path, record: dict
) -> None:
    (workspace / "mlflow.db").unlink()
    client = make_client()
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    response = client.post("/predict", json=record)
    assert response.status_code == 503
    assert "train a model first" in response.json()["message"]
    assert client.get("/model").status_code == 503


def test_admin_reload_needs_the_token(
    make_client: Callable[..., TestClient], promote: Callable[[str], None], record: dict
) -> None:
    disabled = make_client().post("/admin/reload")
    assert disabled.status_code == 403 and "MLOPS_KIT_ADMIN_TOKEN" in disabled.json()["message"]

    client = make_client(admin_token="s3cret")
    assert client.post("/admin/reload").status_code == 401
    wrong = client.post("/admin/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    same = client.post("/admin/reload", headers={"Authorization": "Bearer s3cret"})
    assert same.status_code == 200 and same.json()["reloaded"] is False

    promote("2")
    moved = client.post("/admin/reload", headers={"Authorization": "Bearer s3cret"}).json()
    assert moved["reloaded"] is True
    assert (moved["previous_version"], moved["model_version"]) == ("1", "2")
    assert client.post("/predict", json=record).json()["model_version"] == "2"


def test_a_model_of_another_table_gets_its_own_schema(
    make_client: Callable[..., TestClient], settings: Settings, tmp_path: Path
) -> None:
    """A user's own CSV: the API's fields, categories and example come from that model."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "Petal Width": rng.normal(0.3 + i, 0.1),
            "Garden": rng.choice(["north", "south"]),
            "Kind": k,
        }
        for i, k in enumerate(["setosa", "versicolor", "virginica"])
        for _ in range(30)
    ]
    csv = tmp_path / "flowers.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    own = settings.model_copy(update={"model_name": "flowers"})
    try:
        table = table_spec(data_path=csv, target="Kind", features=["Petal Width", "Garden"])
        run_training_pipeline(own, table, candidates=["logistic_regression"], quality_gate=0.0)
    finally:
        mlflow.set_tracking_uri(None)
    client = make_client(model_name="flowers")
    info = client.get("/model").json()
    assert info["required"] == ["petal_width"]
    assert info["categories"] == {"garden": ["north", "south"]}
    answer = client.post("/predict", json={"petal_width": 2.3, "garden": "south"}).json()
    assert answer["predictions"][0]["predicted"] == "virginica"
    refused = client.post("/predict", json={"petal_width": 2.3, "garden": "east"})
    assert refused.status_code == 422 and "north, south" in refused.json()["message"]


def test_a_batch_sent_column_wise_gets_the_same_answers_column_wise(
    client: TestClient, settings: Settings, record: dict
) -> None:
    records = varied(record)
    by_record = client.post("/predict", json=records).json()["predictions"]
    frame = pd.DataFrame(records).astype(object)
    columns = frame.where(frame.notna(), None).to_dict("list")  # missing values as null
    response = client.post("/predict/columns", json=columns, headers={"X-Request-ID": "cols-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_version"], body["rows"], body["request_id"]) == ("1", 3, "cols-1")
    assert body["predicted"] == [p["predicted"] for p in by_record]
    assert body["confidence"] == [p["confidence"] for p in by_record]
    assert body["low_confidence"] == [p["low_confidence"] for p in by_record]
    for name, values in body["probabilities"].items():
        assert values == [p["probabilities"][name] for p in by_record]
    flush(client)
    log = read_predictions(settings)
    mine = log[log["request_id"] == "cols-1"]
    assert list(mine["record_index"]) == [0, 1, 2]
    assert list(mine["predicted"]) == body["predicted"]
    assert list(mine["bill_length_mm"]) == [r["bill_length_mm"] for r in records]
    assert mine["island"].tolist()[:2] == [record["island"], "Biscoe"]


def test_categorical_columns_may_be_left_out(client: TestClient, record: dict) -> None:
    columns = {k: [v, v] for k, v in record.items() if k not in ("island", "sex")}
    response = client.post("/predict/columns", json=columns)
    assert response.status_code == 200 and response.json()["rows"] == 2


def test_docs_show_a_working_column_wise_example(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    content = schema["paths"]["/predict/columns"]["post"]["requestBody"]["content"]
    example = content["application/json"]["examples"]["columns"]["value"]
    table = schema["components"]["schemas"]["Columns"]
    ignored = set(client.get("/model").json()["ignored_columns"])  # the raw file's other columns
    assert table["additionalProperties"] is False and ignored <= set(table["properties"])
    assert set(example) == set(table["properties"]) - ignored  # every input
    response = client.post("/predict/columns", json=example)
    assert response.status_code == 200 and response.json()["rows"] == len(example["island"])


def test_a_log_far_behind_makes_predictions_wait(
    client: TestClient, record: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the log's backlog limit a prediction is refused with Retry-After, not queued."""
    from mlops_kit.store.predictions import writer

    monkeypatch.setattr(writer, "MAX_PENDING_ROWS", -1)  # any backlog is too much
    response = client.post("/predict", json=record)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "rows behind" in response.json()["message"] and response.headers["x-request-id"]
    monkeypatch.undo()
    assert client.post("/predict", json=record).status_code == 200


def test_a_serving_process_turns_the_collector_back_on_once_its_model_is_loaded(
    workspace: Path,
) -> None:
    # `mlops-kit serve` starts with the cyclic collector off (a faster start); a server left
    # without it would grow with every reference cycle its requests make
    gc.disable()
    try:
        with TestClient(create_app(get_settings(reload_interval=0), freeze_gc=True)) as client:
            assert client.get("/health").json()["model_loaded"]
            assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
