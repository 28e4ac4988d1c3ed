"""POST /invocations, GET /ping, GET /version: MLflow's scoring protocol, spoken by the kit's API.

A client written for `mlflow models serve` (or for a cloud server speaking its protocol) talks to
the kit unchanged: the same bodies, the same answers (``mlflow_protocol.py`` reads and writes
them). The request takes the /predict path (``predictions.serve``): the champion's request models
validate it, so an unknown category is refused (a 400 in MLflow's error shape) where
`mlflow models serve` scores it; what is answered is logged and counted like /predict's answers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from mlflow.version import VERSION

from mlops_kit.serving import mlflow_protocol
from mlops_kit.serving.mlflow_protocol import MlflowError, Predictions
from mlops_kit.serving.routes.deps import LoaderDep, LogDep, MetricsDep, SettingsDep
from mlops_kit.serving.routes.predictions import Dialect, serve

MLFLOW = Dialect(
    accept=mlflow_protocol.media_type,
    read=mlflow_protocol.read,
    render=mlflow_protocol.predictions,
    refuse=mlflow_protocol.refusal,
)
ERRORS = {
    400: {"model": MlflowError, "description": "Not a body MLflow's protocol takes, or invalid"},
    413: {"model": MlflowError, "description": "Body larger than the limit (see GET /model)"},
    415: {"content": {"text/plain": {}}, "description": "Not JSON, CSV or Parquet (plain text)"},
    503: {"model": MlflowError, "description": "No model loaded yet, or the log is far behind"},
}

router = APIRouter(tags=["MLflow scoring protocol"])


@router.post(
    "/invocations",
    response_model=Predictions,
    responses=ERRORS,
    summary="Predict as `mlflow models serve` does (its request formats and answer)",
)
async def invocations(
    request: Request, loader: LoaderDep, log: LogDep, settings: SettingsDep, metrics: MetricsDep
) -> Response:
    """JSON with one of `dataframe_split`, `dataframe_records`, `instances`, `inputs`, or a
    table as `text/csv` (or Parquet); answered as `mlflow models serve` answers, but through the
    kit's validation: unknown categories and fields are refused. Logged like /predict.
    """
    return await serve(request, loader, log, settings, metrics, MLFLOW)


@router.get("/ping", summary="200 while a model is loaded, as MLflow's /ping")
async def ping(loader: LoaderDep) -> Response:
    """An empty answer: 200 with a model loaded, 404 without (MLflow's statuses)."""
    status = 200 if loader.current is not None else 404
    return Response("\n", status_code=status, media_type="application/json")


@router.get("/version", summary="The MLflow version serving, as MLflow's /version")
async def version() -> Response:
    """The bare version string (not JSON-quoted), exactly as MLflow's server sends it."""
    return Response(VERSION, media_type="application/json")
