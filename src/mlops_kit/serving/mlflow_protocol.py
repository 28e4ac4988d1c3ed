"""MLflow's scoring protocol, read into the kit's validation: the bodies, answer and errors of
`mlflow models serve` (read from MLflow 3's own server, ``mlflow/pyfunc/scoring_server``).

A body is JSON holding exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs`` (a ``params`` key beside it is ignored: the kit's model takes none), or a table sent as
CSV (``text/csv``) or Parquet. Each is turned into the records or the columns that the champion's
request models validate (``inputs.py``), so an unknown category is refused here where MLflow's
server scores it. The answer is the pyfunc's output as MLflow writes it, one object per row:
``{"predictions": [{"predicted", "confidence", "proba_<class>", ...}]}``; a refusal is MLflow's
``{"error_code", "message"}`` (with the kit's itemised problems as ``detail``), and a content type
it does not take is a plain-text 415, as MLflow's is.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pydantic_core
from fastapi.responses import PlainTextResponse, Response
from mlflow.pyfunc.scoring_server import (
    CONTENT_TYPE_CSV,
    CONTENT_TYPE_JSON,
    CONTENT_TYPES,
    DF_RECORDS,
    DF_SPLIT,
    REQUIRED_INPUT_FORMAT,
    SUPPORTED_FORMATS,
)
from pydantic import BaseModel, Field

from mlops_kit.confidence import CONFIDENCE, PREDICTED, PROBA_PREFIX
from mlops_kit.scoring.errors import BadRequest, type_name
from mlops_kit.scoring.inputs import Parsed, RequestModels
from mlops_kit.scoring.loader import Champion
from mlops_kit.scoring.score import Scores
from mlops_kit.serving.answers import JSONBody, Problem

SPLIT_KEYS = {"columns", "data", "index"}


def media_type(content_type: str) -> str:
    """The media type of a body MLflow's server takes (JSON, CSV, Parquet); a 415 in its words."""
    mime, *pairs = [part.strip() for part in content_type.split(";")]
    params = {key: value for key, _, value in (pair.partition("=") for pair in pairs)}
    if params.get("charset", "utf-8").lower() != "utf-8":
        raise BadRequest(415, "The scoring server only supports UTF-8")
    if unexpected := set(params) - {"charset"}:
        raise BadRequest(415, f"Unrecognized content type parameters: {', '.join(unexpected)}.")
    if mime not in CONTENT_TYPES:
        raise BadRequest(
            415,
            "This predictor only supports the following content types: "
            f"Types: {CONTENT_TYPES}. Got '{content_type}'.",
        )
    return mime


def read(body: bytes, content_type: str, inputs: RequestModels) -> Parsed:
    """Validate a body of any of MLflow's formats with the champion's request models."""
    mime = media_type(content_type)
    if mime == CONTENT_TYPE_JSON:
        return _read_json(body, inputs)
    return inputs.validate_columns(_columns(_table(body, mime, inputs)))


def _read_json(body: bytes, inputs: RequestModels) -> Parsed:
    try:
        value = pydantic_core.from_json(body)
    except ValueError as exc:
        raise BadRequest(
            400, f"Ensure that input is a valid JSON formatted string. Error: '{exc}'"
        ) from None
    if not isinstance(value, dict):
        got = "a list" if isinstance(value, list) else type_name(value)
        raise BadRequest(400, f"{REQUIRED_INPUT_FORMAT}. Received {got}.")
    keys = [key for key in value if key in SUPPORTED_FORMATS]
    if len(keys) != 1:
        fields = list(value)
        raise BadRequest(
            400, f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {fields}."
        )
    key, data = keys[0], value[keys[0]]
    if key == DF_SPLIT:
        return inputs.validate_records(_split_records(data, inputs))
    if key == DF_RECORDS and not isinstance(data, list):
        raise BadRequest(
            400, f"Dataframe records format must be a list of records. Got {type_name(data)}."
        )
    # instances / inputs: a list of records, one record, or columns ({field: [values]})
    if isinstance(data, dict) and any(isinstance(v, list) for v in data.values()):
        return inputs.validate_columns(data)
    return inputs.validate_records(data)


def _split_records(data: Any, inputs: RequestModels) -> list[Any]:
    """The rows of pandas' "split" orient ({"columns", "data", "index"}) as records."""
    if not isinstance(data, dict):
        raise BadRequest(
            400, f"Dataframe split format must be a dictionary. Got {type_name(data)}."
        )
    if "data" not in data or set(data) - SPLIT_KEYS:
        raise BadRequest(
            400,
            "Dataframe split format must have 'data' field and optionally 'columns' and 'index' "
            f"fields. Got {sorted(data)}.",
        )
    columns, rows = data.get("columns"), data["data"]
    if not isinstance(columns, list):
        raise BadRequest(400, f"dataframe_split must name its 'columns': {inputs.listing}")
    if not isinstance(rows, list) or any(
        not isinstance(row, list) or len(row) != len(columns) for row in rows
    ):
        raise BadRequest(400, f"each row of 'data' must be an array of {len(columns)} values")
    names = [str(c) for c in columns]
    return [dict(zip(names, row, strict=True)) for row in rows]


def _table(body: bytes, mime: str, inputs: RequestModels) -> pd.DataFrame:
    """A CSV or Parquet body as a DataFrame; text columns read as text, as MLflow reads them."""
    try:
        if mime == CONTENT_TYPE_CSV:
            text = {
                name: str for f in inputs.fields if f.kind != "number" for name in (f.name, f.shown)
            }
            return pd.read_csv(io.StringIO(body.decode("utf-8")), dtype=text)
        return pd.read_parquet(io.BytesIO(body))
    except Exception as exc:  # pandas and pyarrow raise many kinds: every one means "not a table"
        kind = "CSV" if mime == CONTENT_TYPE_CSV else "Parquet"
        raise BadRequest(
            400,
            f"Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid "
            f"{kind}-formatted Pandas DataFrame. Error: '{exc}'",
        ) from None


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A table's values column-wise, a missing value (NaN, an empty CSV cell) as None."""
    return {
        str(name): frame[name].astype(object).where(frame[name].notna(), None).tolist()
        for name in frame.columns
    }


def predictions(
    champion: Champion, scores: Scores, request_id: str, threshold: float
) -> dict[str, Any]:
    """The answer as `mlflow models serve` gives it: the pyfunc's output columns, one row each."""
    names = [PROBA_PREFIX + c for c in champion.classes]
    rows = zip(
        scores.predicted, scores.confidence.tolist(), scores.probabilities.tolist(), strict=True
    )
    return {
        "predictions": [
            {PREDICTED: predicted, CONFIDENCE: confidence, **dict(zip(names, proba, strict=True))}
            for predicted, confidence, proba in rows
        ]
    }


def refusal(exc: BadRequest, headers: dict[str, str] | None = None) -> Response:
    """A refused request in MLflow's shape: invalid input is a 400 BAD_REQUEST, as MLflow's is."""
    headers = {**exc.headers, **(headers or {})}
    if exc.status == 415:
        return PlainTextResponse(exc.message, status_code=415, headers=headers)
    status = 400 if exc.status == 422 else exc.status
    code = "TEMPORARILY_UNAVAILABLE" if status == 503 else "BAD_REQUEST"
    body = {"error_code": code, "message": exc.message, "detail": exc.problems}
    return JSONBody(body, status_code=status, headers=headers)


class Predictions(BaseModel):
    """What `mlflow models serve` answers for the kit's model: one object per row sent."""

    predictions: list[dict[str, str | float]] = Field(
        description="per row: predicted, confidence and proba_<class> for every class"
    )


class MlflowError(BaseModel):
    """A refused request, as MLflow's scoring server words one."""

    error_code: str = Field(description="BAD_REQUEST, or TEMPORARILY_UNAVAILABLE (no model yet)")
    message: str
    detail: list[Problem] = Field(default=[], description="the kit's itemised problems")


def openapi_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The /invocations request body for /docs: its formats, with the champion's example rows."""
    record = {"$ref": "#/components/schemas/Record"}
    columns = {"$ref": "#/components/schemas/Columns"}
    records = {"type": "array", "items": record, "minItems": 1}
    split = {
        "type": "object",
        "description": "pandas' split orient: the columns' names, and one array per row",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array"}},
            "index": {"type": "array"},
        },
    }
    formats = {
        DF_SPLIT: split,
        DF_RECORDS: records,
        "instances": {"anyOf": [records, columns]},
        "inputs": {"anyOf": [records, record, columns]},
    }
    envelope = {
        "description": "exactly one of these keys, as `mlflow models serve` takes them",
        "oneOf": [
            {"type": "object", "required": [key], "properties": {key: value}, "title": key}
            for key, value in formats.items()
        ],
    }
    content: dict[str, Any] = {"application/json": {"schema": envelope}, CONTENT_TYPE_CSV: {}}
    content[CONTENT_TYPE_CSV]["schema"] = {"type": "string", "description": "a table with a header"}
    if rows:
        names = list(dict.fromkeys(name for row in rows for name in row))
        examples = {
            DF_SPLIT: {"columns": names, "data": [[row.get(n) for n in names] for row in rows]},
            DF_RECORDS: rows,
            "instances": rows,
            "inputs": {name: [row.get(name) for row in rows] for name in names},
        }
        content["application/json"]["examples"] = {
            key: {"summary": key, "value": {key: value}} for key, value in examples.items()
        }
        content[CONTENT_TYPE_CSV]["example"] = pd.DataFrame(rows, columns=names).to_csv(index=False)
    return {"required": True, "content": content}
