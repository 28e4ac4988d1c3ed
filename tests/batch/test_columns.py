"""The output contract: the input's columns as read, then the scores, in one order and one type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_kit.batch import columns


def test_a_scored_chunk_keeps_the_input_and_adds_the_answers() -> None:
    chunk = pd.DataFrame({"id": ["a", "b"], "size": ["1.5", "2"], "colour": ["red", None]})
    proba = np.array([[0.2, 0.8], [0.65, 0.35]])
    scored = columns.scored_frame(
        chunk, {"size": np.array([1.5, 2.0])}, proba, ["big", "small"], 0.7, "toy", "3", "B1"
    )
    assert list(scored.columns) == [
        "id",
        "size",
        "colour",
        *columns.added_columns(["big", "small"]),
    ]
    assert scored["size"].dtype == np.float64 and scored["id"].tolist() == ["a", "b"]
    assert scored["predicted"].tolist() == ["small", "big"]
    assert scored["confidence"].tolist() == [0.8, 0.65]
    assert scored["low_confidence"].tolist() == [False, True]
    assert scored["proba_big"].tolist() == [0.2, 0.65]
    assert set(scored["model_version"]) == {"3"} and set(scored["batch_id"]) == {"B1"}


def test_an_input_that_already_has_an_output_column_is_refused() -> None:
    with pytest.raises(columns.OutputClash, match="'predicted', 'proba_big'.*scored already"):
        columns.check_no_clash(["id", "predicted", "proba_big"], ["big", "small"])
