"""What the routes share, handed in by FastAPI's ``Depends``: settings, loader, log, metrics.

The getters only read ``app.state``, so they are ``async def``: FastAPI would run a plain ``def``
dependency in its thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mlops_kit.config import Settings
from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.loader import Champion, ChampionLoader
from mlops_kit.serving.metrics import ApiMetrics
from mlops_kit.store.predictions.writer import PredictionLog


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


async def get_loader(request: Request) -> ChampionLoader:
    """The loader holding the current champion."""
    return request.app.state.loader


async def get_log(request: Request) -> PredictionLog:
    """The prediction log's writer."""
    return request.app.state.predlog


async def get_metrics(request: Request) -> ApiMetrics:
    """The API's Prometheus metrics."""
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
LoaderDep = Annotated[ChampionLoader, Depends(get_loader)]
LogDep = Annotated[PredictionLog, Depends(get_log)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]


def champion_of(loader: ChampionLoader) -> Champion:
    """The champion being served; a 503 saying why when none is loaded."""
    champion = loader.current
    if champion is None:
        why = loader.registry.error or "the model is still loading"
        raise BadRequest(503, f"no model loaded: {why}")
    return champion
