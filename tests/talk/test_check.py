"""The presenter's evening-before check: GO only when setup, notebooks, API (and its /docs in a
browser), JupyterLab and MLflow UI all work."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI

from mlops_kit.processes import free_port
from mlops_kit.talk import browser
from mlops_kit.talk.check import Item, TalkCheck, check_setup, run_talk_check

pytestmark = pytest.mark.slow  # real training, notebooks or server processes


def test_setup_checks_pass_here_and_flag_a_busy_port(settings):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        items = check_setup(settings, {"API": port})

    by_check = {i.check: i for i in items}
    assert all(i.ok for i in items if not i.check.startswith("port")), [
        i for i in items if not i.ok
    ]
    assert not by_check[f"port {port} free (API)"].ok
    assert by_check["raw data sha256"].ok


def test_one_failure_means_no_go():
    report = TalkCheck([Item("api", "health", True, ""), Item("api", "version", False, "v1 != v2")])
    assert not report.go
    assert report.lines()[-1].startswith("NO-GO: 1 problem")


@contextmanager
def uvicorn_app(app: FastAPI) -> Iterator[str]:
    """Serve an app with uvicorn on a free port of 127.0.0.1 (in a thread); yield its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_docs_check_fails_for_fastapis_default_docs_from_a_cdn(offline_browser):
    app = FastAPI(title="default docs")

    @app.post("/predict")
    def predict() -> dict[str, str]:
        return {"predicted": "Adelie"}

    with uvicorn_app(app) as url:
        ok, detail = browser.docs_work(url)

    assert not ok
    assert "/docs needs https://cdn.jsdelivr.net/" in detail


def test_full_check_with_the_training_notebook_is_a_go_and_leaves_the_workspace_alone(
    settings, offline_browser
):
    report = run_talk_check(["02"])

    areas = {i.area for i in report.items}
    assert areas == {"setup", "notebooks", "api", "lab", "mlflow-ui"}
    checks = {i.check for i in report.items}
    assert {"/docs offline, Try it out", "opens on kernel 'mlops-kit'"} <= checks
    failures = [i for i in report.items if not i.ok and not i.check.startswith("port")]
    assert not failures, failures
    assert not settings.workspace.exists()  # the check ran in a temporary workspace
