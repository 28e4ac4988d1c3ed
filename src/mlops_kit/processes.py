"""Start a process group with its log, wait until it is ready, stop it: the kit's one place for this.

Everything the kit runs in the background goes through here: the API, `mlflow server`, Prometheus,
JupyterLab, the test fixtures and the benchmarks (PostgreSQL starts and stops through its own
`pg_ctl`, which waits for the server itself; the team stack checks its pids and ports here).

Written on httpx and the standard library rather than on mirakuru (HTTPExecutor, TCPExecutor), for
three reasons read from mirakuru 3.1: it starts its process with ``preexec_fn=os.setsid``, which
Python documents as unsafe in a process with threads (a notebook kernel, uvicorn, a test's
clients); its ``stop`` can only stop a process it started itself, while ``mlops-kit team down``
stops by a pid kept in a state file; and readiness here also means "any of these statuses" or
"a callable says so" (an API with N workers is ready when N pids have answered).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"


class ProcessError(RuntimeError):
    """A process exited before it was ready, or was not ready in time; the message has its log."""


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_taken(port: int, host: str = HOST) -> bool:
    """True when something accepts connections on host:port."""
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def alive(pid: int | None) -> bool:
    """True while the process with this pid runs (an exited child of ours is reaped: not alive)."""
    if not pid:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the system
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, run by another user (the `postgres` user's postmaster)
    try:  # a zombie (exited, its reaper not yet there) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True  # no /proc here: the signal check is all there is


def stop_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by pid, then SIGKILL it if it is still there after timeout."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.02)
        if not alive(pid):
            return


@dataclass
class Process:
    """A process group started by `start`; `stop()` (or leaving a `with` block) ends it."""

    command: list[str]
    popen: subprocess.Popen
    log: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """The pid of the process (and of its group)."""
        return self.popen.pid

    def running(self) -> bool:
        """True until the process has exited."""
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait(self, timeout: float) -> bool:
        """Wait up to timeout seconds for the process to exit by itself; True if it did."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group (a graceful stop), SIGKILL it after timeout; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self.running():
            stop_group(self.pid, timeout)
        self.wait(timeout)  # reap it

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    command: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
    append: bool = False,
    stop_at_exit: bool = True,
) -> Process:
    """Start command in a process group of its own, stdout and stderr to log.

    ``stop_at_exit``: stop it when this interpreter exits (a failing cell or test still stops it);
    False for a process meant to outlive its starter (the team stack's servers).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a" if append else "w") as out:
        popen = subprocess.Popen(
            list(command),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, never orphaned
        )
    process = Process(list(command), popen, log)
    if stop_at_exit:
        atexit.register(process.stop)
    return process


def http_ready(url: str, accept: Sequence[int] | None = (200,)) -> Callable[[], bool]:
    """A readiness check: GET url answers with a status in accept (None: any status)."""

    def check() -> bool:
        try:
            status = httpx.get(url, timeout=2.0).status_code
        except httpx.TransportError:
            return False
        return accept is None or status in accept

    return check


def tcp_ready(port: int, host: str = HOST) -> Callable[[], bool]:
    """A readiness check: host:port accepts connections."""
    return lambda: port_taken(port, host)


def wait_ready(
    process: Process,
    ready: Callable[[], bool],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.05,
) -> Process:
    """Poll ready() until it is true; if the process exits or time runs out, stop it and raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            process.stop()
            code = process.popen.returncode
            raise ProcessError(f"{what} exited with {code}:\n{process.log_tail()}")
        if ready():
            return process
        time.sleep(interval)
    process.stop()
    raise ProcessError(f"{what} did not answer within {timeout:.0f} s:\n{process.log_tail()}")
