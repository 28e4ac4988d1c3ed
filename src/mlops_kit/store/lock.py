"""One workspace lock: only one command at a time writes the registry or the store.

``train``, ``retrain``, ``pipeline``, ``capture`` and ``label`` (and writing a data version) hold
it while they write. A second command waits for the first (up to ``Settings.lock_timeout``
seconds), then stops with ``WorkspaceBusy``, which names who holds the lock. The lock is an
``flock`` on ``<workspace>/workspace.lock``: the operating system releases it if its holder dies.

It is re-entrant in the thread that holds it (the training pipeline writes a data version while
it holds the lock); another thread waits like another process would. A process started while the
lock is held (a notebook kernel run by ``mlops-kit pipeline``) shares its parent's hold: the holder
names the lock file in ``MLOPS_KIT_LOCK_HELD``, which child processes inherit.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Concatenate, ParamSpec, TypeVar

from mlops_kit.config import Settings

P = ParamSpec("P")
R = TypeVar("R")
HELD_ENV = "MLOPS_KIT_LOCK_HELD"  # the lock file a parent process holds for its children
_local = threading.local()  # per thread: lock path -> how deep this thread holds it
_holding: set[str] = set()  # the lock paths some thread of this process holds
_guard = threading.Lock()


class WorkspaceBusy(RuntimeError):
    """Another command holds the workspace lock."""


def lock_path(settings: Settings) -> Path:
    """The lock file of the settings' workspace."""
    return settings.workspace / "workspace.lock"


def _key(settings: Settings) -> str:
    return str(lock_path(settings).resolve())


def _depths() -> dict[str, int]:
    if not hasattr(_local, "depths"):
        _local.depths = {}
    return _local.depths


def inherited(settings: Settings) -> bool:
    """True in a child process started while its parent held this workspace's lock."""
    key = _key(settings)
    with _guard:
        return os.environ.get(HELD_ENV) == key and key not in _holding


@contextmanager
def workspace_lock(settings: Settings, action: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the workspace lock while `action` writes; wait up to `timeout` s (default: the setting)."""
    key = _key(settings)
    depths = _depths()
    if depths.get(key) or inherited(settings):
        depths[key] = depths.get(key, 0) + 1
        try:
            yield
        finally:
            depths[key] -= 1
        return
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = settings.lock_timeout if timeout is None else timeout
    with open(path, "a+") as handle:
        _acquire(handle, wait)
        try:
            handle.seek(0)
            handle.truncate()
            since = datetime.now().isoformat(timespec="seconds")
            handle.write(f"{action} (pid {os.getpid()}, since {since})")
            handle.flush()
            with _guard:
                _holding.add(key)
                os.environ[HELD_ENV] = key  # child processes started now share the hold
            depths[key] = 1
            yield
        finally:
            depths.pop(key, None)
            with _guard:
                _holding.discard(key)
                if os.environ.get(HELD_ENV) == key:
                    del os.environ[HELD_ENV]
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def holds_workspace_lock(
    action: str,
) -> Callable[[Callable[Concatenate[Settings, P], R]], Callable[Concatenate[Settings, P], R]]:
    """Decorate a function whose first argument is the settings: it runs holding the lock."""

    def decorate(
        func: Callable[Concatenate[Settings, P], R],
    ) -> Callable[Concatenate[Settings, P], R]:
        @functools.wraps(func)
        def locked(settings: Settings, *args: P.args, **kwargs: P.kwargs) -> R:
            with workspace_lock(settings, action):
                return func(settings, *args, **kwargs)

        return locked

    return decorate


def child_env(settings: Settings) -> dict[str, str]:
    """The variable that lets a child process share the lock this process holds (else nothing)."""
    key = _key(settings)
    with _guard:
        return {HELD_ENV: key} if key in _holding or os.environ.get(HELD_ENV) == key else {}


def _acquire(handle: IO[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)
                holder = handle.read().strip() or "another command"
                raise WorkspaceBusy(
                    f"the workspace is busy: {holder} is writing to it; "
                    "wait for it to finish and run this again"
                ) from None
            time.sleep(0.2)
