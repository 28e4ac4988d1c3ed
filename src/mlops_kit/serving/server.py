"""Run the API under uvicorn: ``mlops-kit serve`` and ``make serve``."""

from __future__ import annotations

import copy
import os

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from mlops_kit.config import Settings, get_settings
from mlops_kit.serving.app import create_app

# A serving process retries the registry on its own schedule (the poller), so a call to an
# unreachable tracking server should fail in seconds rather than after MLflow's default ~4 min of
# retries; explicit environment values win.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def log_config() -> dict:
    """uvicorn's logging setup, plus the kit's own serving messages (model loaded, swapped, …)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlops_kit"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(settings: Settings | None = None) -> None:
    """Serve the champion on settings.api_host:settings.api_port (one uvicorn worker)."""
    settings = settings or get_settings()
    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uvicorn.run(
        create_app(settings, freeze_gc=True),
        host=settings.api_host,
        port=settings.api_port,
        workers=1,
        log_config=log_config(),
        timeout_graceful_shutdown=10,
    )
