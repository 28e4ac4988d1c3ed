"""Request models generated from the model: its signature's fields, its encoder's categories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.inputs import OTHER_CHARS, encoder_categories, request_models
from tests.helpers import toy_pipeline as fitted


def test_categories_come_from_the_fitted_encoder() -> None:
    categories = encoder_categories(fitted(["size", "weight"], ["colour"]))
    assert categories == {"colour": ["blue", "green", "red"]}
    assert encoder_categories(fitted([], ["colour"])) == categories


def test_a_pipeline_without_text_columns_has_no_categories() -> None:
    """The categorical block is empty and its encoder never fitted: nothing to read, no crash."""
    assert encoder_categories(fitted(["size", "weight"], [])) == {}


def models(max_batch: int = 10):
    """Request models of a number, a category and a free-text field."""
    inputs = [("size", "double"), ("colour", "string"), ("note", "string")]
    return request_models(inputs, {"colour": ["blue", "red"]}, max_batch)


def test_fields_follow_the_signature_and_the_categories() -> None:
    inputs = models()
    assert [(f.name, f.kind) for f in inputs.fields] == [
        ("size", "number"),
        ("colour", "category"),
        ("note", "text"),
    ]
    assert inputs.required == ["size"] and inputs.categories == {"colour": ["blue", "red"]}
    schema = inputs.record.json_schema()
    assert schema["additionalProperties"] is False and schema["required"] == ["size"]


def test_records_become_columns_in_model_order() -> None:
    body = json.dumps([{"note": "hi", "size": 2}, {"size": 3.5, "colour": "red"}]).encode()
    parsed = models().parse_records(body)
    assert (parsed.rows, parsed.batch) == (2, True)
    assert list(parsed.columns) == ["size", "colour", "note"]
    assert parsed.columns["size"].dtype == np.float64 and parsed.columns["size"].tolist() == [
        2,
        3.5,
    ]
    assert parsed.columns["colour"] == [None, "red"] and parsed.columns["note"] == ["hi", None]


def test_free_text_takes_any_text_but_categories_only_known_ones() -> None:
    inputs = models()
    assert inputs.parse_records(b'{"size": 1, "note": "anything at all"}').rows == 1
    with pytest.raises(BadRequest, match="unknown category 'green'"):
        inputs.parse_records(b'{"size": 1, "colour": "green"}')
    with pytest.raises(BadRequest, match="'note' must be text or null"):
        inputs.parse_records(b'{"size": 1, "note": 5}')


def test_the_batch_limit_is_checked_before_records_are_validated() -> None:
    with pytest.raises(BadRequest, match="batch of 11 records is over the limit of 10") as refused:
        models().parse_records(b"[" + b"{}," * 10 + b"{}]")
    assert refused.value.problems == []  # no record was looked at


@pytest.mark.parametrize("max_batch", [1, 10, 10_000])
def test_the_body_limit_fits_a_full_batch_of_the_widest_records(max_batch: int) -> None:
    inputs = models(max_batch)
    widest = {"size": -2.2250738585072014e-308, "colour": "blue", "note": "x" * 1000}
    pretty = json.dumps([widest] * max_batch, indent=2).encode()
    assert len(pretty) <= inputs.body_limit
    assert inputs.parse_records(pretty).rows == max_batch
    # and it grows with the batch limit, not with a fixed per-record allowance
    assert inputs.body_limit < 64 * 1024 + max_batch * 2 * len(json.dumps(widest))


def car_models(max_batch: int = 10, **others: object):
    """Request models of a model trained on a cars file: 'Name' (its key), 'Year' and 'Origin'
    are columns of the file the model does not use."""
    inputs = [("horsepower", "double"), ("cylinders", "string")]
    file_columns = {"name": "Name", "year": "Year", "origin": "origin"}
    given = {"other_columns": file_columns, "record_key": "name", **others}
    return request_models(inputs, {"cylinders": ["4", "6", "8"]}, max_batch, **given)


ROW = {"Name": "chevrolet chevelle malibu", "horsepower": 130, "cylinders": "8"}
ROW |= {"Year": "1970-01-01", "origin": "USA"}  # a row exactly as it is in the file


def test_a_row_as_in_the_file_is_accepted_and_its_key_kept() -> None:
    inputs = car_models()
    assert inputs.ignored == ["Name", "Year", "origin"] and inputs.key.shown == "Name"
    parsed = inputs.parse_records(json.dumps(ROW).encode())
    assert list(parsed.columns) == ["horsepower", "cylinders"]  # only inputs reach the model
    assert parsed.keys == ["chevrolet chevelle malibu"]
    by_name = {**ROW, "name": ROW["Name"]}  # the kit's name of the column works as well
    del by_name["Name"]
    assert inputs.parse_records(json.dumps(by_name).encode()).keys == [ROW["Name"]]


def test_ignored_columns_take_any_value_and_keys_come_back_in_order() -> None:
    inputs = car_models()
    odd = {"Year": {"nested": [1, None]}, "origin": 3.5, "Name": 17}  # not validated, not used
    batch = [{**ROW, **odd}, {"horsepower": 90}, {**ROW, "Name": None}]
    parsed = inputs.parse_records(json.dumps(batch).encode())
    assert parsed.rows == 3 and parsed.keys == [17, None, None]
    assert inputs.parse_records(b'[{"horsepower": 90}]').keys is None  # no record carried one


def test_a_column_the_file_never_had_is_still_refused() -> None:
    inputs = car_models()
    with pytest.raises(BadRequest) as refused:
        inputs.parse_records(json.dumps({**ROW, "colour": "red"}).encode())
    assert refused.value.status == 422
    assert refused.value.message == (
        "field 'colour' is not an input of the model; its inputs are: horsepower, cylinders"
    )
    with pytest.raises(BadRequest, match="'name' is not an input"):  # header and name: twice
        inputs.parse_records(json.dumps({**ROW, "name": "x"}).encode())
    with pytest.raises(BadRequest, match="'colour' is not an input of the model"):
        inputs.parse_columns(json.dumps({"horsepower": [1], "colour": ["red"]}).encode())


def test_the_columns_form_takes_the_files_columns_and_keeps_the_key() -> None:
    inputs = car_models()
    table = {"Name": ["a", "b"], "horsepower": [90, 130], "Year": ["1970", None]}
    parsed = inputs.parse_columns(json.dumps(table).encode())
    assert parsed.rows == 2 and parsed.keys == ["a", "b"] and "Year" not in parsed.columns
    with pytest.raises(BadRequest, match="the same number of rows"):
        inputs.parse_columns(json.dumps({**table, "Name": ["a"]}).encode())


def test_a_model_logged_without_its_files_columns_refuses_them() -> None:
    """A model from before the kit kept them: only its inputs are accepted, as before."""
    old = car_models(other_columns=None, record_key=None)
    assert old.others == () and old.key is None and old.ignored == []
    with pytest.raises(BadRequest, match="field 'Name' is not an input of the model"):
        old.parse_records(json.dumps(ROW).encode())
    schema = old.record.json_schema()
    assert set(schema["properties"]) == {"horsepower", "cylinders"}


def test_the_schema_names_the_ignored_columns_and_the_key() -> None:
    schema = car_models().record.json_schema()
    assert schema["additionalProperties"] is False and schema["required"] == ["horsepower"]
    assert {"Name", "Year", "origin"} <= set(schema["properties"])
    assert "the record's key" in schema["properties"]["Name"]["description"]
    assert "does not use" in schema["properties"]["Year"]["description"]


def test_room_is_made_for_the_ignored_columns_in_the_body_limit() -> None:
    plain = car_models(100, other_columns=None, record_key=None)
    assert car_models(100).body_limit - plain.body_limit == int(100 * OTHER_CHARS * 1.5)


def test_a_brazilian_files_headers_are_accepted_as_written() -> None:
    """Accented headers, as an Excel file in Portuguese has them, and the kit's plain names."""
    inputs = request_models(
        [("teor_alcoolico", "double")],
        {},
        10,
        {"teor_alcoolico": "teor alcoólico"},
        {"codigo": "código", "comentario": "comentário"},
        "codigo",
    )
    row = {"código": "V-001", "teor alcoólico": 13.2, "comentário": "provado em 3/03"}
    parsed = inputs.parse_records(json.dumps(row, ensure_ascii=False).encode())
    assert parsed.keys == ["V-001"] and parsed.columns["teor_alcoolico"].tolist() == [13.2]
    plain = {"codigo": "V-002", "teor_alcoolico": 12.0, "comentario": None}
    assert inputs.parse_records(json.dumps(plain).encode()).keys == ["V-002"]
    assert inputs.ignored == ["código", "comentário"] and inputs.key.shown == "código"
