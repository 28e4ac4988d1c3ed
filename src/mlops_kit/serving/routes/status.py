"""GET /health, GET /model, and / (to the interactive docs); GET /metrics is in ``metrics.py``."""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from mlops_kit.serving.answers import ErrorResponse, Health, JSONBody, ModelInfo
from mlops_kit.serving.routes.deps import LoaderDep, LogDep, SettingsDep, champion_of

router = APIRouter(tags=["status"])


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """The interactive documentation."""
    return RedirectResponse("/docs")


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "No model loaded"}},
    summary="Liveness, whether a model is loaded, registry and log status",
)
async def health(
    request: Request, loader: LoaderDep, log: LogDep, settings: SettingsDep
) -> JSONBody:
    """`ok`; `degraded`: serving, but the registry or the log has a problem; `unavailable`.

    With several workers (`serve --workers N`) each answers for itself: its pid, the version it
    serves, its own registry checks and prediction log.
    """
    champion, registry, log_status = loader.current, loader.registry, log.status()
    if champion is None:
        status = "unavailable"
    elif registry.error or log_status["error"]:
        status = "degraded"
    else:
        status = "ok"
    body = {
        "status": status,
        "pid": os.getpid(),  # with several workers: the one that answered, and what it serves
        "model_loaded": champion is not None,
        "model_name": settings.model_name,
        "alias": None if settings.model_uri else settings.alias,  # None: a fixed model URI
        "model_version": champion.version if champion else None,
        "scoring": champion.scoring if champion else None,
        "environment": champion.environment_check() if champion else None,
        "registry": {
            "reachable": registry.reachable,
            "last_check": registry.last_check,
            "error": registry.error,
            "reload_interval": settings.reload_interval,
        },
        "prediction_log": log_status,
        "shadow": request.app.state.shadow.status() if request.app.state.shadow else None,
        "uptime_s": round(time.monotonic() - request.app.state.started, 1),
    }
    return JSONBody(body, status_code=503 if champion is None else 200)


@router.get(
    "/model",
    response_model=ModelInfo,
    responses={503: {"model": ErrorResponse, "description": "No model loaded yet"}},
    summary="The model being served: version, run, data version, metrics, inputs, limits",
)
async def model_info(loader: LoaderDep, settings: SettingsDep) -> JSONBody:
    """Registry facts, metrics, what a request may contain, and which path scores."""
    champion = champion_of(loader)
    return JSONBody({**champion.info(), "low_confidence_threshold": settings.low_confidence})
