"""Column-wise JSON text: the same text as encoding each row's dict, and records cut as sent."""

from __future__ import annotations

import json

import numpy as np
import pydantic_core
import pytest

from mlops_kit.serving import jsontext
from mlops_kit.serving.schemas import build_spec

SPEC = build_spec(
    [
        ("bill_length_mm", "double"),
        ("body_mass_g", "long"),
        ("island", "string"),
        ("note", "string"),
    ],
    {"island": ["Biscoe", "Dream"]},
    max_batch=100,
)


def encoded(row: dict) -> str:
    return pydantic_core.to_json(row).decode()


def test_records_texts_equal_encoding_each_dict() -> None:
    columns = {
        "x": np.array([0.1, 1e-300, 123456789.125, -2.5e17, 3.0]),
        "n": [1, 2.5, -7, 0, 10**17],
        'say %s, "quoted" {}': ["a", None, 'é "q" %d', "}{", "\n\t"],
    }
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    for row in rows:
        row["x"] = float(row["x"])
    assert jsontext.records_texts(columns) == [encoded(row) for row in rows]
    assert [json.loads(text) for text in jsontext.records_texts(columns)] == rows


def test_non_finite_and_odd_values_are_still_valid_json() -> None:
    texts = jsontext.records_texts({"v": [float("nan"), True, 10**400, [1, 2]]})
    assert texts == [encoded({"v": v}) for v in [float("nan"), True, 10**400, [1, 2]]]


def test_nested_templates_fill_per_row() -> None:
    fill = jsontext.template([("p", [("a%", None), ("b", None)]), ("name", '"m%1"')]).__mod__
    assert json.loads(fill(("0.5", "0.25"))) == {"p": {"a%": 0.5, "b": 0.25}, "name": "m%1"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "b": "x"}',
        b'[{"a":1},{"a":2}]',
        b' [\n  {"a": 1, "b": null},\r\n\t{"b": "y", "a": 2.5}\n] ',
    ],
)
def test_records_are_cut_from_the_body_as_sent(body: bytes) -> None:
    value = json.loads(body)
    records = value if isinstance(value, list) else [value]
    cut = jsontext.cut_records(body, len(records))
    assert cut is not None and [json.loads(text) for text in cut] == records
    assert all(text in body.decode() for text in cut)


def test_cutting_gives_up_when_the_count_is_off() -> None:
    assert jsontext.cut_records(b'[{"a": 1}, {"a": 2}]', 3) is None
    assert jsontext.cut_records(b'[{"a": "\xff"}]', 1) is None


def test_brace_free_looks_at_keys_and_text_values() -> None:
    assert jsontext.brace_free({"a": np.array([1.0]), "b": ["x", None]})
    assert not jsontext.brace_free({"a": ["x}"]})
    assert not jsontext.brace_free({"{a": [1.0]})


VALID = [
    {"bill_length_mm": 40.5, "body_mass_g": 3000, "island": "Dream", "note": "ok"},
    {"bill_length_mm": 41, "body_mass_g": 3100.0},
    {"bill_length_mm": 1e-3, "body_mass_g": 0, "island": None, "note": None},
]
INVALID = [
    {"bill_length_mm": 40.5},  # a required field missing
    {"bill_length_mm": 40.5, "body_mass_g": 1, "wing": 2.0},  # an unknown field
    {"bill_length_mm": "40.5", "body_mass_g": 1},  # a string number
    {"bill_length_mm": True, "body_mass_g": 1},  # a boolean
    {"bill_length_mm": None, "body_mass_g": 1},  # null number
    {"bill_length_mm": 1.0, "body_mass_g": 10**400},  # beyond float range
    {"bill_length_mm": 1.0, "body_mass_g": 1, "island": "Mars"},  # unknown category
    {"bill_length_mm": 1.0, "body_mass_g": 1, "island": 3},  # a number as category
    {"bill_length_mm": 1.0, "body_mass_g": 1, "island": ["Dream"]},  # an array as category
    {"bill_length_mm": 1.0, "body_mass_g": 1, "note": 5},  # a number as text
]


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "one record"])
def test_bulk_check_accepts_what_the_validator_accepts_with_the_same_values(batch: bool) -> None:
    records = VALID if batch else VALID[:1]
    body = json.dumps(records if batch else records[0]).encode()
    fast = SPEC.valid_columns(pydantic_core.from_json(body), batch)
    value = (SPEC.batch if batch else SPEC.record).validate_json(body)
    slow = SPEC.columns(value if batch else [value])
    assert fast is not None and list(fast) == list(slow)
    for name in slow:
        assert np.asarray(fast[name]).tolist() == np.asarray(slow[name]).tolist()


@pytest.mark.parametrize("bad", INVALID)
def test_bulk_check_leaves_every_invalid_record_to_the_validator(bad: dict) -> None:
    body = pydantic_core.to_json([VALID[0], bad], inf_nan_mode="constants")
    assert SPEC.valid_columns(pydantic_core.from_json(body), True) is None
    with pytest.raises(ValueError):
        SPEC.batch.validate_json(body)


@pytest.mark.parametrize("text", ['[{"bill_length_mm": NaN, "body_mass_g": 1}]', "[]", "[1]"])
def test_bulk_check_refuses_nan_empty_and_non_objects(text: str) -> None:
    assert SPEC.valid_columns(pydantic_core.from_json(text), True) is None
