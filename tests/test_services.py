"""services.start_api: the API in the background stops with its starter, even one killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from mlops_kit.processes import alive

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
