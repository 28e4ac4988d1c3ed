"""Answer: the response models, and the JSON bodies rendered from plain structures by pydantic.

The pydantic models document every answer in /docs; the bodies themselves are built as plain
dicts and lists and turned into JSON text by ``pydantic_core.to_json`` (Rust), which is as fast
for a 10,000-record answer as validating each record through a model would be slow.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic_core
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.loader import Champion
from mlops_kit.scoring.score import Scores


class JSONBody(Response):
    """A JSON response rendered by pydantic_core from plain structures."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The JSON text of the content."""
        return pydantic_core.to_json(content)


def _head(champion: Champion, request_id: str, threshold: float) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "model_name": champion.name,
        "model_version": champion.version,
        "low_confidence_threshold": threshold,
    }


def records_answer(
    champion: Champion, scores: Scores, request_id: str, threshold: float
) -> dict[str, Any]:
    """The answer to /predict: one prediction object per record, in the order sent."""
    classes, name, version = champion.classes, champion.name, champion.version
    rows = zip(
        scores.predicted,
        scores.confidence.tolist(),
        scores.probabilities.tolist(),
        scores.low_confidence.tolist(),
        strict=True,
    )
    predictions = [
        {
            "predicted": predicted,
            "confidence": confidence,
            "probabilities": dict(zip(classes, probabilities, strict=True)),
            "low_confidence": low,
            "model_name": name,
            "model_version": version,
        }
        for predicted, confidence, probabilities, low in rows
    ]
    if scores.keys is not None:  # the record's key first: which answer is which record
        predictions = [
            {"key": key, **prediction}
            for key, prediction in zip(scores.keys, predictions, strict=True)
        ]
    return {**_head(champion, request_id, threshold), "predictions": predictions}


def columns_answer(
    champion: Champion, scores: Scores, request_id: str, threshold: float
) -> dict[str, Any]:
    """The answer to /predict/columns: one array per output, rows in the order sent."""
    columns = zip(champion.classes, scores.probabilities.T.tolist(), strict=True)
    return {
        **_head(champion, request_id, threshold),
        "rows": len(scores.predicted),
        **({"key": scores.keys} if scores.keys is not None else {}),
        "predicted": scores.predicted,
        "confidence": scores.confidence.tolist(),
        "probabilities": dict(columns),
        "low_confidence": scores.low_confidence.tolist(),
    }


# --- what each answer looks like (the models document the API in /docs) ----------------------


class Prediction(BaseModel):
    """The model's answer for one record."""

    key: Any = Field(
        default=None,
        description="the record's key (its identifier column) as sent; only when the model has "
        "a key column (GET /model, record_key) and the request carried it",
    )
    predicted: str = Field(description="the predicted class")
    confidence: float = Field(description="probability of the predicted class")
    probabilities: dict[str, float] = Field(description="probability of every class")
    low_confidence: bool = Field(description="confidence below the review threshold")
    model_name: str
    model_version: str


class PredictResponse(BaseModel):
    """Predictions for the records sent, in the same order, and the model version that made them."""

    request_id: str
    model_name: str
    model_version: str
    low_confidence_threshold: float
    predictions: list[Prediction]


class ColumnsResponse(BaseModel):
    """Predictions for a batch sent column-wise, column-wise too, rows in the order sent."""

    request_id: str
    model_name: str
    model_version: str
    low_confidence_threshold: float
    rows: int = Field(description="how many rows were scored")
    key: list[Any] | None = Field(
        default=None,
        description="each row's key as sent; only when the model has a key column and the "
        "request carried it",
    )
    predicted: list[str] = Field(description="the predicted class of each row")
    confidence: list[float] = Field(description="probability of the predicted class, per row")
    probabilities: dict[str, list[float]] = Field(description="per class: its probability per row")
    low_confidence: list[bool] = Field(description="confidence below the review threshold, per row")


class Problem(BaseModel):
    """One thing wrong with a request."""

    loc: list[str | int]
    type: str
    field: str | None = None
    msg: str
    record: int | None = None


class ErrorResponse(BaseModel):
    """A refused request: a one-line message and the itemised problems."""

    message: str
    detail: list[Problem] | str = []


class RegistryStatus(BaseModel):
    """What the API last heard from the MLflow registry."""

    reachable: bool | None
    last_check: str | None
    error: str | None
    reload_interval: float


class LogStatus(BaseModel):
    """The prediction log's writer."""

    written: int
    pending: int
    failed: int
    error: str | None


class PackageCheck(BaseModel):
    """One package (or Python): the version the model was trained with and the one serving it."""

    name: str
    model: str | None = Field(description="the version the model recorded (requirements.txt)")
    here: str | None = Field(description="the version installed where the API runs")
    match: bool = Field(description="false when major or minor differ, or it is missing here")
    note: str | None = Field(description="why it does not match and the fix, or a patch difference")


class EnvironmentCheck(BaseModel):
    """The environment serving the model against the one that trained it."""

    match: bool = Field(description="false when Python or any package differs beyond a patch")
    python: PackageCheck
    packages: list[PackageCheck]


class Health(BaseModel):
    """Liveness, whether a model is loaded, and whether the registry and the log are working."""

    status: Literal["ok", "degraded", "unavailable"]
    pid: int = Field(description="the worker process that answered (one of several with --workers)")
    model_loaded: bool
    model_name: str
    alias: str | None = Field(description="the registry alias it serves; None: a fixed model URI")
    model_version: str | None
    scoring: Literal["accelerator", "model"] | None = Field(
        description="which path scores requests: the accelerator, or the model itself"
    )
    environment: EnvironmentCheck | None = Field(
        description="this environment against the one that trained the model served"
    )
    registry: RegistryStatus
    prediction_log: LogStatus
    shadow: dict[str, Any] | None = Field(
        default=None, description="serve --shadow ALIAS: its version, what it scored or skipped"
    )
    uptime_s: float


class ModelInfo(BaseModel):
    """The model being served: registry facts, metrics, and what a request may contain."""

    name: str
    version: str
    alias: str | None = Field(description="None when a fixed model URI is served (no registry)")
    run_id: str | None
    data_version: str | None
    candidate: str | None
    gate: str | None
    metrics: dict[str, float]
    classes: list[str]
    inputs: dict[str, str]
    file_headers: dict[str, str] = Field(description="the file's header of a renamed input")
    ignored_columns: list[str] = Field(
        description="columns of the training file a record may carry that the model does not "
        "use: accepted and ignored (any other field is refused)"
    )
    record_key: str | None = Field(
        description="the column that identifies a record: sent back with its prediction and "
        "kept in the prediction log"
    )
    required: list[str]
    categories: dict[str, list[str]]
    low_confidence_threshold: float
    max_batch: int
    max_body_bytes: int = Field(description="the largest request body read, derived from inputs")
    scoring: Literal["accelerator", "model"]
    loaded_at: str
    source: str
    environment: EnvironmentCheck | None = Field(
        description="this environment against the one that trained the model"
    )


class ReloadResult(BaseModel):
    """What an admin reload did."""

    reloaded: bool
    model_name: str
    previous_version: str | None
    model_version: str | None
    message: str


def refusal(exc: BadRequest, headers: dict[str, str] | None = None) -> JSONBody:
    """The answer to a refused request: its status, message and problems."""
    return JSONBody(exc.body(), status_code=exc.status, headers={**exc.headers, **(headers or {})})
