"""The API started in the background stops with its starter, even when the starter is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

STARTER = """
import sys, time
from mlops_kit.config import Settings
from mlops_kit.services import start_api
api = start_api(Settings(workspace=sys.argv[1]))
print(api.process.pid, api.url, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its dead parent's successor) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_api_stops_when_its_starter_is_killed(trained):
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(trained.settings.workspace)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        api_pid = int(starter.stdout.readline().split()[0])
        assert _alive(api_pid)
        starter.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the watchdog is left
        starter.wait(timeout=10)
        deadline = time.monotonic() + 20
        while _alive(api_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(api_pid)
    finally:
        if starter.poll() is None:
            starter.kill()
