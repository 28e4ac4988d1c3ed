"""Answers: the JSON bodies of /predict and /predict/columns, rendered from plain structures."""

from __future__ import annotations

import json

import pytest

from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.score import score
from mlops_kit.serving.answers import (
    ColumnsResponse,
    PredictResponse,
    columns_answer,
    records_answer,
    refusal,
)
from tests.helpers import toy_champion as champion


@pytest.fixture(scope="module")
def scored():
    """A champion and its scores for three records."""
    toy = champion(["size", "weight"], ["colour"])
    body = b'[{"size": 4, "weight": 8}, {"size": 14, "weight": 29, "colour": "red"}, {"size": 9, "weight": 18, "colour": "red"}]'
    return toy, score(toy, toy.inputs.parse_records(body), 0.8)


def test_records_answer_one_prediction_per_record(scored) -> None:
    toy, scores = scored
    body = records_answer(toy, scores, "r-1", 0.8)
    PredictResponse.model_validate(body)  # what /docs promises
    assert (body["request_id"], body["model_version"], body["low_confidence_threshold"]) == (
        "r-1",
        "1",
        0.8,
    )
    first = body["predictions"][0]
    assert set(first["probabilities"]) == set(toy.classes)
    assert first["predicted"] == max(first["probabilities"], key=first["probabilities"].get)
    assert first["low_confidence"] == (first["confidence"] < 0.8)
    assert [p["predicted"] for p in body["predictions"]] == scores.predicted


def test_columns_answer_one_array_per_output(scored) -> None:
    toy, scores = scored
    body = columns_answer(toy, scores, "r-2", 0.8)
    ColumnsResponse.model_validate(body)
    records = records_answer(toy, scores, "r-2", 0.8)["predictions"]
    assert body["rows"] == 3 and body["predicted"] == [p["predicted"] for p in records]
    for name, values in body["probabilities"].items():
        assert values == [p["probabilities"][name] for p in records]


def test_a_refusal_carries_its_status_message_and_headers() -> None:
    exc = BadRequest(503, "busy", headers={"Retry-After": "1"})
    response = refusal(exc, {"X-Request-ID": "r-3"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1" and response.headers["x-request-id"] == "r-3"
    assert json.loads(response.body) == {"message": "busy", "detail": []}
