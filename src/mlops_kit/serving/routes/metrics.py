"""GET /metrics: the API's operational metrics in the Prometheus text format (``metrics.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mlops_kit.serving.metrics import CONTENT_TYPE

router = APIRouter(tags=["status"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
    summary="Requests, latency, predictions, confidence, refusals and log backlog, for Prometheus",
)
def metrics(request: Request) -> Response:
    """Every worker's counts added up; a plain `def`: reading the workers' files is file I/O."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)
