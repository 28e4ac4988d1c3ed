"""Refused requests: a 4xx whose message names the field and the problem, and nothing in the log."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mlops_kit.config import Settings
from mlops_kit.serving.app import create_app

GOOD = {
    "island": "Dream",
    "bill_length_mm": 46.5,
    "bill_depth_mm": 17.9,
    "flipper_length_mm": 192.0,
    "body_mass_g": 3500.0,
    "sex": "female",
}
MAX_BATCH = 5


def body(value: object) -> bytes:
    """JSON bytes of a value."""
    return json.dumps(value).encode()


def with_(drop: str = "", **changes: object) -> bytes:
    """The good record as JSON, without the field `drop` and with some fields changed."""
    return body({k: v for k, v in {**GOOD, **changes}.items() if k != drop})


def raw_mass(token: bytes) -> bytes:
    """The good record with body_mass_g written as a raw JSON token (NaN, Infinity, …)."""
    return with_(drop="body_mass_g")[:-1] + b', "body_mass_g": ' + token + b"}"


CASES = [
    # id, body, status, words the message must contain
    ("malformed-json", b'{"island": "Dream", ', 400, ["not valid JSON"]),
    ("not-utf8", b'{"island": "\xff"}', 400, ["not valid JSON"]),
    ("empty-body", b"", 400, ["empty"]),
    ("missing-field", with_(drop="bill_length_mm"), 422, ["bill_length_mm", "missing"]),
    ("extra-field", with_(wing_span_mm=12.0), 422, ["wing_span_mm", "not an input"]),
    (
        "typo-field",
        with_(drop="bill_length_mm", bill_lenght_mm=46.5),
        422,
        ["bill_lenght_mm", "bill_length_mm"],
    ),
    (
        "string-in-number",
        with_(body_mass_g="3500"),
        422,
        ["body_mass_g", "must be a number", "string"],
    ),
    (
        "bool-in-number",
        with_(body_mass_g=True),
        422,
        ["body_mass_g", "must be a number", "boolean"],
    ),
    (
        "null-number",
        body({**GOOD, "body_mass_g": None}),
        422,
        ["body_mass_g", "must be a number", "null"],
    ),
    ("nan", raw_mass(b"NaN"), 422, ["body_mass_g", "finite"]),
    ("infinity", raw_mass(b"-Infinity"), 422, ["body_mass_g", "finite"]),
    ("overflow", raw_mass(b"1e999"), 422, ["body_mass_g", "finite"]),
    (
        "unknown-category",
        with_(island="Atlantis"),
        422,
        ["island", "unknown category", "'Atlantis'", "Biscoe"],
    ),
    ("category-case", with_(sex="MALE"), 422, ["sex", "unknown category", "male"]),
    ("number-in-category", with_(island=3), 422, ["island", "must be one of"]),
    ("empty-batch", b"[]", 422, ["empty batch"]),
    ("oversized-batch", body([GOOD] * (MAX_BATCH + 1)), 422, ["6 records", "limit of 5"]),
    (
        "bad-record-in-batch",
        body([GOOD, {**GOOD, "island": "Atlantis"}]),
        422,
        ["record 1", "island"],
    ),
    ("non-object-in-batch", body([GOOD, 7]), 422, ["record 1", "must be a JSON object"]),
    ("number-body", b"42", 422, ["JSON object", "array"]),
    ("string-body", b'"island"', 422, ["JSON object", "string"]),
    ("null-body", b"null", 422, ["JSON object", "null"]),
]


@pytest.fixture(scope="module")
def strict(registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the module, with a batch limit of 5."""
    root = tmp_path_factory.mktemp("bad-input")
    (root / "workspace").mkdir()
    shutil.copy2(registry.workspace / "mlflow.db", root / "workspace" / "mlflow.db")
    settings = Settings(workspace=root / "workspace", reload_interval=0, max_batch=MAX_BATCH)
    with TestClient(create_app(settings)) as client:
        yield client


def logged(client: TestClient) -> int:
    """Rows the app has handed to its prediction log."""
    status = client.app.state.predlog.status()
    return status["written"] + status["pending"]


def columns(drop: str = "", rows: int = 2, **changes: object) -> bytes:
    """The good record as a column-wise batch of `rows` rows, without `drop`, some columns changed."""
    table = {k: [v] * rows for k, v in GOOD.items() if k != drop}
    return body({**table, **changes})


COLUMN_CASES = [
    ("malformed-json", b'{"island": ["Dream"', 400, ["not valid JSON"]),
    ("empty-body", b"  ", 400, ["empty"]),
    ("records-not-columns", body([GOOD]), 422, ["JSON object of columns", "array"]),
    ("missing-column", columns(drop="body_mass_g"), 422, ["column 'body_mass_g' is missing"]),
    ("extra-column", columns(wing_span_mm=[1.0, 2.0]), 422, ["wing_span_mm", "not an input"]),
    ("not-an-array", columns(body_mass_g=3500.0), 422, ["'body_mass_g' must be an array"]),
    ("empty-columns", columns(rows=0), 422, ["is empty"]),
    ("too-many-rows", columns(rows=MAX_BATCH + 1), 422, ["6 rows", "limit of 5"]),
    (
        "uneven-columns",
        columns(island=["Dream"]),
        422,
        ["same number of rows", "'island' has 1", "'sex' has 2"],
    ),
    ("string-in-number", columns(body_mass_g=[3500.0, "heavy"]), 422, ["record 1", "body_mass_g"]),
    (
        "nan",
        columns(drop="body_mass_g")[:-1] + b', "body_mass_g": [1.0, NaN]}',
        422,
        ["body_mass_g", "finite"],
    ),
    ("unknown-category", columns(island=["Dream", "Atlantis"]), 422, ["record 1", "'Atlantis'"]),
]


REFUSED = [("/predict", *case) for case in CASES] + [
    ("/predict/columns", *case) for case in COLUMN_CASES
]


@pytest.mark.parametrize(
    ("path", "content", "status", "words"),
    [(c[0], *c[2:]) for c in REFUSED],
    ids=[f"{c[0].removeprefix('/')}-{c[1]}" for c in REFUSED],
)
def test_bad_input_is_refused_with_a_clear_message(
    strict: TestClient, path: str, content: bytes, status: int, words: list[str]
) -> None:
    before = logged(strict)
    response = strict.post(path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    message = response.json()["message"]
    for word in words:
        assert word in message
    assert response.headers["x-request-id"]
    assert logged(strict) == before


def test_column_problems_name_the_column_and_the_row(strict: TestClient) -> None:
    bad = json.loads(columns(island=["Dream", "Atlantis"], body_mass_g=[1.0, "x"]))
    detail = strict.post("/predict/columns", json=bad).json()["detail"]
    assert {(tuple(d["loc"]), d["field"]) for d in detail} == {
        (("body", "island", 1), "island"),
        (("body", "body_mass_g", 1), "body_mass_g"),
    }


def test_each_problem_is_itemised_with_its_field(strict: TestClient) -> None:
    bad = [
        GOOD,
        {**GOOD, "island": "Atlantis", "body_mass_g": "heavy"},
        {**GOOD, "colour": "black"},
    ]
    detail = strict.post("/predict", json=bad).json()["detail"]
    found = {(d["record"], d["field"]) for d in detail}
    assert found == {(1, "island"), (1, "body_mass_g"), (2, "colour")}
    assert all(d["loc"][0] == "body" for d in detail)


def test_body_over_the_byte_limit_is_refused_before_reading(strict: TestClient) -> None:
    huge = b"[" + b" " * 200_000 + b"]"
    response = strict.post("/predict", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["message"]


def test_a_body_that_is_not_json_is_refused(strict: TestClient) -> None:
    response = strict.post(
        "/predict", content=b"island=Dream", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["message"]


def test_good_requests_still_pass_and_are_logged(strict: TestClient) -> None:
    before = logged(strict)
    assert strict.post("/predict", json=[GOOD] * MAX_BATCH).status_code == 200
    assert strict.post("/predict", json={**GOOD, "sex": None}).status_code == 200
    assert logged(strict) == before + MAX_BATCH + 1
