"""Batch validation refuses exactly the rows the API refuses, and says why, naming the column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_kit.batch import validate
from mlops_kit.scoring.inputs import model_frame
from tests.helpers import toy_champion

# (column, value as it is written in the file, whether the API scores the record)
CHANGES = [
    (None, None, True),
    ("sex", "", True),  # a category left empty: imputed
    ("island", "", True),
    ("bill_length_mm", " 46.5 ", True),  # text of a number, as every CSV cell is
    ("body_mass_g", "4200", True),
    ("bill_length_mm", "abc", False),
    ("bill_depth_mm", "", False),  # a required number missing
    ("flipper_length_mm", "inf", False),
    ("body_mass_g", "1e999", False),  # overflows to infinity
    ("island", "Atlantis", False),
    ("sex", "MALE", False),  # the model knows 'male'
    ("sex", "female", True),
]


def _as_json(value: str | None) -> object:
    """A file's cell as a user's JSON record carries it: a number, text, or null."""
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        return value


def test_rows_refused_are_the_rows_the_api_refuses(penguins, held_out, api) -> None:
    rows = held_out.head(len(CHANGES)).astype(object).astype(str).reset_index(drop=True)
    for i, (column, value, _) in enumerate(CHANGES):
        if column:
            rows.loc[i, column] = value
    client = api(penguins)
    fields = client.get("/model").json()["inputs"]
    answered = []
    for _, row in rows.iterrows():
        record = {name: _as_json(row[name]) for name in fields}
        body = json.dumps({k: v for k, v in record.items() if v is not None})
        response = client.post("/predict", content=body)
        assert response.status_code in (200, 422), response.text
        answered.append(response.status_code == 200)
    champion = client.app.state.loader.current
    reasons = validate.reasons(rows, champion.inputs)
    assert [r is None for r in reasons] == answered == [ok for *_, ok in CHANGES]
    for reason, (column, value, ok) in zip(reasons, CHANGES, strict=True):
        if not ok:
            assert f"'{column}'" in reason and (value.strip() == "" or value in reason)


def test_valid_rows_reach_the_model_as_the_api_gives_them() -> None:
    toy = toy_champion(["size", "weight"], ["colour"])
    table = pd.DataFrame(
        {"id": ["a", "b"], "size": ["1.5", "2"], "weight": [3, 4], "colour": ["red", "NA"]}
    )
    checked = validate.check(table, toy.inputs)
    parsed = toy.inputs.parse_records(
        b'[{"size": 1.5, "weight": 3, "colour": "red"}, {"size": 2, "weight": 4}]'
    )
    pd.testing.assert_frame_equal(checked.features, model_frame(parsed.columns, toy.inputs))
    assert checked.valid.tolist() == [True, True]


def test_columns_are_found_by_the_files_header_or_its_normalised_name() -> None:
    toy = toy_champion(["size", "weight"], ["colour"])
    found = validate.find_columns(["Size", "weight", "Colour ", "id"], toy.inputs)
    assert found == {"size": "Size", "weight": "weight", "colour": "Colour "}


def test_a_table_without_a_model_input_is_refused_as_a_whole() -> None:
    toy = toy_champion(["size", "weight"], ["colour"])
    table = pd.DataFrame({"id": ["a"], "size": [1.0]})
    with pytest.raises(validate.MissingInputs) as refused:
        validate.reasons(table, toy.inputs)
    message = str(refused.value)
    assert "'weight', 'colour'" in message and "its columns are: id, size" in message
    assert "Add the column" in message


def test_numbers_from_parquet_keep_the_api_rules() -> None:
    toy = toy_champion(["size", "weight"], [])
    table = pd.DataFrame({"size": [1.0, np.nan, np.inf], "weight": [True, False, None]})
    reasons = validate.reasons(table.astype({"weight": "boolean"}), toy.inputs).tolist()
    assert reasons[0] == "'weight' must be a number, got a boolean True"
    assert "'size' is missing" in reasons[1] and "'size' must be a finite number" in reasons[2]
