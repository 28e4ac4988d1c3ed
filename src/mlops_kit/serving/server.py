"""Run the API under uvicorn: ``mlops-kit serve`` and ``make serve``."""

from __future__ import annotations

import copy
import os
import signal
import threading
import time

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


PARENT_ENV = "MLOPS_KIT_EXIT_WITH_PARENT"  # set by serving.process: stop when the starter is gone


def _exit_with_parent(interval: float = 1.0) -> None:
    """A started-in-the-background server stops itself when its parent dies (even by SIGKILL)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)  # graceful: the prediction log is flushed

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def serve(settings: Settings | None = None) -> None:
    """Serve the champion on settings.api_host:settings.api_port (one uvicorn worker)."""
    settings = settings or get_settings()
    if os.environ.get(PARENT_ENV):
        _exit_with_parent()
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
