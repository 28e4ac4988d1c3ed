"""The workspace lock: one writer at a time, the others wait; re-entrant; shared with child processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from mlflow.tracking import MlflowClient

from mlops_kit.config import Settings
from mlops_kit.store.lock import WorkspaceBusy, workspace_lock

HOLDER = """
import sys
from mlops_kit.config import Settings
from mlops_kit.store.lock import workspace_lock
with workspace_lock(Settings(), sys.argv[1], timeout=0):
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin
"""
TRY_LOCK = """
from mlops_kit.config import Settings
from mlops_kit.store.lock import workspace_lock
with workspace_lock(Settings(), "child", timeout=0):
    print("got it")
"""


@contextmanager
def held_by_another_process(action: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the test workspace's lock until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, action],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_busy_workspace_names_its_holder_after_the_wait(settings: Settings) -> None:
    with held_by_another_process("training") as holder:
        busy = rf"training \(pid {holder.pid}, since "
        with pytest.raises(WorkspaceBusy, match=busy), workspace_lock(settings, "capture", 0.3):
            pass
    with workspace_lock(settings, "capture", timeout=0):  # free once the holder is done
        pass


def test_a_second_writer_waits_for_the_first_and_then_writes(settings: Settings) -> None:
    order: list[str] = []
    got_it = threading.Event()

    def second() -> None:
        with workspace_lock(settings, "second", timeout=60):
            order.append("second")
            got_it.set()

    with held_by_another_process("first"):
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not got_it.wait(0.5)  # still waiting while the first one holds it
        order.append("first done")
    waiter.join(60)
    assert order == ["first done", "second"]


def test_the_lock_is_reentrant_in_its_thread_and_other_threads_wait(settings: Settings) -> None:
    errors: list[Exception] = []

    def other_thread() -> None:
        try:
            with workspace_lock(settings, "other thread", timeout=0):
                pass
        except WorkspaceBusy as exc:
            errors.append(exc)

    # the same thread takes it again without waiting; another thread has to wait
    with workspace_lock(settings, "outer"), workspace_lock(settings, "inner", timeout=0):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "outer (pid" in str(errors[0])
    with workspace_lock(settings, "after", timeout=0):  # both levels released it
        pass


def test_a_child_process_shares_its_parents_hold(settings: Settings) -> None:
    def child() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", TRY_LOCK], capture_output=True, text=True, timeout=60
        )

    with workspace_lock(settings, "pipeline"):
        inside = child()
    assert inside.returncode == 0 and "got it" in inside.stdout, inside.stderr
    with held_by_another_process("pipeline"):  # not its parent: the child has to wait
        outside = child()
    assert outside.returncode != 0 and "WorkspaceBusy" in outside.stderr


@pytest.mark.slow
def test_two_trains_started_a_second_apart_in_a_fresh_workspace_both_succeed(
    settings: Settings, tmp_path
) -> None:
    # Without the lock the second one crashed inside MLflow's first-time schema migration.
    def train() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "mlops_kit", "train", "--candidates", "logistic_regression"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = train()
    time.sleep(1.0)
    second = train()
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [err[-2000:] for _, err in outputs]
    versions = MlflowClient(settings.tracking_uri).search_model_versions(
        f"name = '{settings.model_name}'"
    )
    assert sorted(int(v.version) for v in versions) == [1, 2]
