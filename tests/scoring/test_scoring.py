"""Scoring: the frame the model's pipeline expects, its probabilities, and the answers from them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_kit.scoring import accelerator
from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.inputs import model_frame
from mlops_kit.scoring.score import score
from tests.helpers import toy_champion as champion
from tests.helpers import toy_table as table


def test_the_frame_is_what_the_pipeline_was_fitted_on() -> None:
    toy = champion(["size", "weight"], ["colour"])
    frame = model_frame({"colour": ["red", None], "weight": [1, 2], "size": [3.0, 4.0]}, toy.inputs)
    assert list(frame.columns) == ["size", "weight", "colour"]
    assert frame["weight"].dtype == np.float64 and frame["colour"].dtype == object
    assert frame["colour"].iloc[0] == "red" and frame["colour"].iloc[1] is np.nan


def test_scores_are_the_pipelines_probabilities() -> None:
    toy = champion(["size", "weight"], ["colour"])
    rows = table().head(20)
    columns = {c: [None if pd.isna(v) else v for v in rows[c]] for c in toy.inputs.names}
    parsed = toy.inputs.parse_columns(json.dumps(columns).encode())
    scores = score(toy, parsed, threshold=0.9)
    expected = toy.pipeline.predict_proba(rows[toy.inputs.names])
    assert np.allclose(scores.probabilities, expected, rtol=1e-12)
    assert scores.predicted == np.asarray(toy.classes)[expected.argmax(axis=1)].tolist()
    assert np.array_equal(scores.confidence, expected.max(axis=1))
    assert np.array_equal(scores.low_confidence, expected.max(axis=1) < 0.9)


def test_the_accelerator_scores_when_the_champion_has_one() -> None:
    plain = champion(["size", "weight"], ["colour"])
    fast = champion(["size", "weight"], ["colour"], accelerator.build(plain.pipeline))
    assert (plain.scoring, fast.scoring) == ("model", "accelerator")
    parsed = plain.inputs.parse_records(b'[{"size": 12, "weight": 20, "colour": "red"}]')
    assert np.allclose(
        score(fast, parsed, 0.7).probabilities, score(plain, parsed, 0.7).probabilities
    )


def test_values_the_model_cannot_score_are_refused() -> None:
    toy = champion(["size", "weight"], [])
    parsed = toy.inputs.parse_records(
        b'[{"size": 1, "weight": 2}, {"size": 1.79e308, "weight": 1.79e308}]'
    )
    with pytest.raises(BadRequest, match=r"record\(s\) \[1\]: the model cannot score") as refused:
        score(toy, parsed, 0.7)
    assert refused.value.status == 422
