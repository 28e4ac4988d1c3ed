"""services.start_api: the API in the background, waited for or not; it stops with its starter."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from mlops_kit.processes import ProcessError, alive
from mlops_kit.services import start_api

STARTER = """
import sys, time
from mlops_kit.config import Settings
from mlops_kit.services import start_api
api = start_api(Settings(workspace=sys.argv[1]))
print(api.process.pid, api.url, flush=True)
time.sleep(120)
"""


def test_api_stops_when_its_starter_is_killed(trained):
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(trained.settings.workspace)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        api_pid = int(starter.stdout.readline().split()[0])
        assert alive(api_pid)
        starter.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the watchdog is left
        starter.wait(timeout=10)
        deadline = time.monotonic() + 20
        while alive(api_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(api_pid)
    finally:
        if starter.poll() is None:
            starter.kill()


def test_an_api_started_without_waiting_answers_once_waited_for(trained) -> None:
    with start_api(trained.settings, wait=False) as api:
        with pytest.raises(httpx.ConnectError):  # still importing: nothing listens yet
            httpx.get(f"{api.url}/health", timeout=2.0)
        assert api.wait() is api
        assert api.get("/health")["model_version"] == "1"


def test_waiting_for_an_api_that_exits_says_why(trained) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = start_api(trained.settings, port=port, wait=False)
        with pytest.raises(
            ProcessError, match=r"(?s)the API exited with 3:.*address already in use"
        ):
            api.wait()
    assert not api.process.running()
