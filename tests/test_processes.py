"""processes: a process group started with its log, waited for, and stopped as a whole."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from mlops_kit import processes

# A tiny HTTP server that also starts a child of its own (it must stop with its group).
HTTP_SERVER = """
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print("child", child.pid, flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler
                       ).serve_forever()
"""
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(300)"
)


def _child_pid(log: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("child "):
                return int(line.split()[1])
        time.sleep(0.05)
    raise AssertionError(f"no child pid in {log.read_text()!r}")


def test_waits_for_http_then_stops_the_whole_group(tmp_path: Path) -> None:
    port = processes.free_port()
    command = [sys.executable, "-c", HTTP_SERVER, str(port)]
    with processes.start(command, tmp_path / "server.log") as server:
        processes.wait_ready(server, processes.http_ready(f"http://127.0.0.1:{port}/"), "server")
        child = _child_pid(server.log)
        assert processes.port_taken(port) and processes.alive(child)
    assert not server.running()
    deadline = time.monotonic() + 10
    while processes.alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes.alive(child)  # the server's own child went with its group
    assert not processes.port_taken(port)


def test_a_process_that_exits_early_fails_with_its_log(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('no such model'); sys.exit(3)"]
    process = processes.start(command, tmp_path / "bad.log")
    with pytest.raises(
        processes.ProcessError, match=r"(?s)bad server exited with 3.*no such model"
    ):
        processes.wait_ready(process, lambda: False, "bad server", timeout=20)


def test_not_ready_in_time_is_stopped_and_reported(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(300)"]
    process = processes.start(command, tmp_path / "slow.log")
    port = processes.free_port()
    with pytest.raises(processes.ProcessError, match="did not answer within 1 s"):
        processes.wait_ready(process, processes.tcp_ready(port), "slow server", timeout=1)
    assert not process.running()


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    process = processes.start([sys.executable, "-c", IGNORES_SIGTERM], tmp_path / "stubborn.log")
    processes.wait_ready(process, lambda: "ready" in process.log_tail(), "stubborn", timeout=20)
    started = time.monotonic()
    process.stop(timeout=0.5)
    assert not process.running()
    assert time.monotonic() - started < 5


def test_stop_group_stops_a_process_known_only_by_its_pid(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(300)"]
    process = processes.start(command, tmp_path / "detached.log", stop_at_exit=False)
    assert processes.alive(process.pid)
    processes.stop_group(process.pid, timeout=5)  # as `team down` does, from the state file
    assert not processes.alive(process.pid)
