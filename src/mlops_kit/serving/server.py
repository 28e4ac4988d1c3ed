"""Run the API under uvicorn: ``mlops-kit serve [--workers N]`` and ``make serve``.

One worker: the app runs in this process. Several: uvicorn's supervisor starts N worker processes
on the one port, each building its own app from the environment (``worker_app``): each loads the
champion, polls the registry, writes its own predictions to the store, and answers /health for
itself; their Prometheus metrics are added up through files in a fresh folder of the workspace.
"""

from __future__ import annotations

import copy
import gc
import os
import signal
import threading
import time

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from mlops_kit.config import EXIT_WITH_PARENT, Settings, get_settings, settings_env
from mlops_kit.serving.app import create_app
from mlops_kit.serving.metrics import MULTIPROCESS_DIR, fresh_multiprocess_dir
from mlops_kit.store.db import create_tables, make_engine

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


def _exit_with_parent(interval: float = 1.0) -> None:
    """A started-in-the-background server stops itself when its parent dies (even by SIGKILL)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)  # graceful: the prediction log is flushed

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def serve(settings: Settings | None = None, workers: int = 1) -> None:
    """Serve the champion on settings.api_host:settings.api_port with ``workers`` processes."""
    settings = settings or get_settings()
    if os.environ.get(EXIT_WITH_PARENT):
        _exit_with_parent()
    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    options = dict(
        host=settings.api_host,
        port=settings.api_port,
        log_config=log_config(),
        timeout_graceful_shutdown=10,
    )
    if workers <= 1:
        uvicorn.run(create_app(settings, freeze_gc=True), workers=1, **options)
        return
    gc.enable()  # the supervisor only starts and watches the workers: no start-up to speed up
    os.environ.update(settings_env(settings))  # the workers build these very settings
    folder = settings.workspace / "metrics" / f"api-{settings.api_port}"
    os.environ[MULTIPROCESS_DIR] = str(fresh_multiprocess_dir(folder))
    engine = make_engine(settings.store)
    try:  # once, here: N workers creating the tables at the same moment would race
        create_tables(engine)
    finally:
        engine.dispose()
    uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **options)


def worker_app() -> FastAPI:
    """The app of one of ``serve``'s worker processes, from the environment ``serve`` set."""
    _exit_with_parent()  # a worker whose supervisor is gone stops too
    return create_app(get_settings(), freeze_gc=True)
