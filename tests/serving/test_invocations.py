"""POST /invocations, GET /ping, GET /version: MLflow's scoring protocol on the kit's API."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops_kit import services
from mlops_kit.config import Settings
from mlops_kit.store.predictions.window import read_predictions

from .test_metrics import total

KNOWN_ISLANDS = "Biscoe, Dream, Torgersen"


def some_records(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Four records: a female, a male from Biscoe, two with null categories (missing data)."""
    return [
        {**record, "sex": "female"},
        {**record, "sex": "male", "island": "Biscoe", "flipper_length_mm": 221.0},
        {**record, "sex": None, "island": None, "bill_length_mm": 39.0},
        {**record, "sex": None, "body_mass_g": 5000.0},
    ]


def in_every_format(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The same records as each of MLflow's request formats: keyword arguments of a POST."""
    names = list(dict.fromkeys(name for row in records for name in row))
    columns = {name: [row.get(name) for row in records] for name in names}
    frame = pd.DataFrame(columns)
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    split = {"columns": names, "data": [[row.get(name) for name in names] for row in records]}
    return {
        "dataframe_split": {"json": {"dataframe_split": split}},
        "dataframe_records": {"json": {"dataframe_records": records}},
        "instances": {"json": {"instances": records}},
        "instances as columns": {"json": {"instances": columns}},
        "inputs": {"json": {"inputs": records}},
        "inputs as columns": {"json": {"inputs": columns}},
        "csv": {"content": frame.to_csv(index=False), "headers": {"Content-Type": "text/csv"}},
        "parquet": {
            "content": parquet.getvalue(),
            "headers": {"Content-Type": "application/vnd.apache.parquet"},
        },
    }


FORMATS = list(in_every_format([{"island": "Dream"}]))


@pytest.mark.parametrize("name", FORMATS)
def test_every_mlflow_format_is_answered_as_predict_answers_it(
    client: TestClient, record: dict, name: str
) -> None:
    records = some_records(record)
    expected = client.post("/predict", json=records).json()["predictions"]
    response = client.post("/invocations", **in_every_format(records)[name])
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    answers = response.json()["predictions"]
    assert len(answers) == len(records)
    for answer, kit in zip(answers, expected, strict=True):
        wanted = {f"proba_{c}": p for c, p in kit["probabilities"].items()}
        assert answer == {"predicted": kit["predicted"], "confidence": kit["confidence"], **wanted}


def test_one_record_under_inputs_is_one_prediction(client: TestClient, record: dict) -> None:
    answer = client.post("/invocations", json={"inputs": record, "params": {}})
    assert answer.status_code == 200
    [prediction] = answer.json()["predictions"]
    assert (
        prediction["predicted"]
        == client.post("/predict", json=record).json()["predictions"][0]["predicted"]
    )


def test_an_unknown_category_is_refused_in_mlflow_error_shape(
    client: TestClient, record: dict
) -> None:
    for request in in_every_format([record, {**record, "island": "Atlantis"}]).values():
        refused = client.post("/invocations", **request)
        assert refused.status_code == 400
        body = refused.json()
        assert body["error_code"] == "BAD_REQUEST"
        assert "record 1: field 'island' has an unknown category 'Atlantis'" in body["message"]
        assert KNOWN_ISLANDS in body["message"]


@pytest.mark.parametrize(
    ("request_kwargs", "says"),
    [
        ({"json": {}}, "exactly one of the input fields"),
        ({"json": [{"island": "Dream"}]}, "Received a list"),
        ({"json": {"inputs": [], "instances": []}}, "Received dictionary with input fields"),
        ({"content": b'{"inputs": ', "headers": {"Content-Type": "application/json"}}, "JSON"),
        ({"json": {"dataframe_records": {"island": ["Dream"]}}}, "must be a list of records"),
        ({"json": {"dataframe_split": {"rows": []}}}, "must have 'data' field"),
        ({"json": {"dataframe_records": []}}, "empty batch"),
        ({"json": {"dataframe_records": [{"bill_lenght_mm": 40.0}]}}, "'bill_lenght_mm'"),
        ({"content": b"", "headers": {"Content-Type": "text/csv"}}, "Failed to parse input"),
    ],
)
def test_bodies_that_are_not_mlflow_requests_get_a_400_bad_request(
    client: TestClient, request_kwargs: dict, says: str
) -> None:
    refused = client.post("/invocations", **request_kwargs)
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "BAD_REQUEST" and says in refused.json()["message"]


@pytest.mark.parametrize(
    ("content_type", "says"),
    [
        ("text/plain", "only supports the following content types"),
        ("text/csv; charset=latin-1", "only supports UTF-8"),
        ("application/json; format=pandas-split", "Unrecognized content type parameters: format"),
    ],
)
def test_other_content_types_get_mlflow_plain_text_415(
    client: TestClient, content_type: str, says: str
) -> None:
    refused = client.post("/invocations", content=b"{}", headers={"Content-Type": content_type})
    assert refused.status_code == 415
    assert refused.headers["content-type"].startswith("text/plain") and says in refused.text


def test_answers_are_logged_and_counted_like_predict(
    client: TestClient, settings: Settings, record: dict
) -> None:
    records = some_records(record)
    sent = client.post(
        "/invocations", json={"dataframe_records": records}, headers={"X-Request-ID": "inv-1"}
    )
    assert sent.status_code == 200
    assert (
        client.post("/invocations", json={"inputs": {**record, "island": "Atlantis"}}).status_code
        == 400
    )
    assert client.app.state.predlog.flush(10)
    log = read_predictions(settings)
    assert len(log) == len(records)  # the refused request is not logged
    assert (log["request_id"] == "inv-1").all() and (log["model_version"] == "1").all()
    answers = sent.json()["predictions"]
    assert log["predicted"].tolist() == [a["predicted"] for a in answers]
    assert log["confidence"].tolist() == pytest.approx([a["confidence"] for a in answers])
    assert (log["low_confidence_threshold"] == settings.low_confidence).all()
    assert log["bill_length_mm"].tolist() == [r["bill_length_mm"] for r in records]
    text = client.get("/metrics").text
    assert total(text, "mlops_kit_predictions_total", model_version="1") == len(records)
    assert (
        total(text, "mlops_kit_refused_requests_total", status="400", reason="literal_error") == 1
    )
    requests = "mlops_kit_http_request_duration_seconds_count"
    assert total(text, requests, endpoint="/invocations", status="200") == 1
    assert total(text, requests, endpoint="/invocations", status="400") == 1


def test_ping_and_version_answer_as_mlflow_does(client: TestClient) -> None:
    ping = client.get("/ping")
    assert ping.status_code == 200 and ping.text == "\n"
    assert client.get("/version").text == mlflow.__version__


def test_without_a_model_ping_fails_and_invocations_say_unavailable(
    make_client: Callable[..., TestClient], workspace: Path, record: dict
) -> None:
    (workspace / "mlflow.db").unlink()
    client = make_client()
    assert client.get("/ping").status_code == 404
    refused = client.post("/invocations", json={"inputs": [record]})
    assert refused.status_code == 503
    assert refused.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


def test_docs_show_invocations_with_an_example_of_each_format(client: TestClient) -> None:
    post = client.get("/openapi.json").json()["paths"]["/invocations"]["post"]
    assert post["summary"].startswith("Predict as `mlflow models serve` does")
    content = post["requestBody"]["content"]
    examples = content["application/json"]["examples"]
    assert set(examples) == {"dataframe_split", "dataframe_records", "instances", "inputs"}
    for example in examples.values():  # "Try it out" sends exactly the example
        assert client.post("/invocations", json=example["value"]).status_code == 200
    csv = content["text/csv"]["example"]
    assert (
        client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"}).status_code
        == 200
    )


# MLflow parses these with numpy: a JSON null in a text column becomes the text "None", which the
# model scores as an unseen category; its dataframe formats, and the kit in every format, impute it
TENSOR_FORMATS = {"instances", "instances as columns", "inputs", "inputs as columns"}


@pytest.mark.slow
def test_the_kit_answers_as_mlflow_models_serve_on_the_same_model(
    client: TestClient, settings: Settings, record: dict, tmp_path: Path
) -> None:
    """Every format to both: the same answers; Atlantis or a typo: MLflow scores, the kit refuses."""
    records = some_records(record)  # two of them with null categories
    as_text = [{k: "None" if v is None else v for k, v in row.items()} for row in records]
    uri = f"models:/{settings.model_name}@champion"
    with (
        services.start_mlflow_models_serve(
            uri, settings.tracking_uri, log=tmp_path / "serve.log"
        ) as served,
        httpx.Client(base_url=served.url, timeout=30) as mlflow_serve,
    ):
        expected = mlflow_serve.post("/invocations", json={"dataframe_records": records}).json()
        worst = 0.0
        for name, request in in_every_format(records).items():
            theirs = mlflow_serve.post("/invocations", **request)
            ours = client.post("/invocations", **request)
            assert theirs.status_code == ours.status_code == 200, (name, theirs.text)
            worst = max(worst, largest_difference(ours.json(), expected))
            if name in TENSOR_FORMATS:  # MLflow: null read as "None"; the kit: null is missing
                none = mlflow_serve.post("/invocations", json={"dataframe_records": as_text})
                assert largest_difference(theirs.json(), none.json()) <= 1e-12
                assert largest_difference(theirs.json(), expected) > 0.01
            else:
                worst = max(worst, largest_difference(ours.json(), theirs.json()))
        print(f"largest difference from mlflow models serve: {worst:.3g}")
        assert worst <= 1e-12
        typo = {k if k != "bill_length_mm" else "bill_lenght_mm": v for k, v in record.items()}
        for wrong in ({**record, "island": "Atlantis"}, typo):  # MLflow: imputes, or ignores it
            confident = mlflow_serve.post("/invocations", json={"dataframe_records": [wrong]})
            assert confident.status_code == 200 and confident.json()["predictions"][0]["predicted"]
            refused = client.post("/invocations", json={"dataframe_records": [wrong]})
            assert refused.status_code == 400 and refused.json()["error_code"] == "BAD_REQUEST"
        assert mlflow_serve.get("/ping").text == client.get("/ping").text
        assert mlflow_serve.get("/version").text == client.get("/version").text


def largest_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    """The same keys and classes asserted; the largest difference between their numbers."""
    assert set(ours) == set(theirs) == {"predictions"}
    worst = 0.0
    for mine, other in zip(ours["predictions"], theirs["predictions"], strict=True):
        assert list(mine) == list(other)
        for key, value in mine.items():
            if isinstance(value, str):
                assert value == other[key]
            else:
                worst = max(worst, abs(value - other[key]))
    return worst
