"""Request models generated from the model: its signature's fields, its encoder's categories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.inputs import encoder_categories, request_models
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
