"""One workspace lock: only one command at a time writes the registry or the store.

``train``, ``retrain``, ``pipeline``, ``capture`` and ``label`` hold it while they write. A second
command waits for the first (up to ``timeout`` seconds), then stops with ``WorkspaceBusy``, which
names who holds the lock. The lock is re-entrant within a process, and a process started while it
is held (a notebook kernel run by ``mlops-kit pipeline``) shares its parent's hold.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from mlops_kit.config import Settings

HELD_ENV = "MLOPS_KIT_LOCK_HELD"  # the lock file a parent process holds for its children
_held: dict[str, int] = {}  # lock path -> depth, in this process
_guard = threading.RLock()


class WorkspaceBusy(RuntimeError):
    """Another command holds the workspace lock."""


def lock_path(settings: Settings) -> Path:
    """The lock file of the settings' workspace."""
    return settings.workspace / "workspace.lock"


@contextmanager
def workspace_lock(settings: Settings, action: str, timeout: float = 0.0) -> Iterator[None]:
    """Hold the workspace lock while `action` writes; wait up to `timeout` s, then WorkspaceBusy."""
    path = lock_path(settings)
    key = str(path.resolve())
    with _guard:
        shared = bool(_held.get(key)) or os.environ.get(HELD_ENV) == key
        _held[key] = _held.get(key, 0) + 1
    if shared:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole action
    try:
        _acquire(handle, timeout)
    except BaseException:
        handle.close()
        with _guard:
            _held.pop(key, None)
        raise
    try:
        handle.seek(0)
        handle.truncate()
        since = datetime.now().isoformat(timespec="seconds")
        handle.write(f"{action} (pid {os.getpid()}, since {since})")
        handle.flush()
        os.environ[HELD_ENV] = key
        yield
    finally:
        with _guard:
            _held.pop(key, None)
        if os.environ.get(HELD_ENV) == key:
            del os.environ[HELD_ENV]
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _acquire(handle: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)  # type: ignore[attr-defined]
                holder = handle.read().strip() or "another process"  # type: ignore[attr-defined]
                raise WorkspaceBusy(
                    f"the workspace is busy: {holder} is writing to it; "
                    "wait for it to finish and run this again"
                ) from None
            time.sleep(0.2)
