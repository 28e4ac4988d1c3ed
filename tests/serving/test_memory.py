"""Bounded memory: the largest bodies the API reads, four at once, against a real uvicorn process."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import api_process

LIMIT_MB = 1024  # the API process's resident memory must stay under about 1 GB


def memory_mb(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak so far (VmHWM), in MB."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) // 1024
    return found


def post_at_once(url: str, body: bytes, clients: int = 4) -> list[httpx.Response]:
    """POST the same body from several clients at the same time."""
    responses: list[httpx.Response] = []

    def send() -> None:
        headers = {"Content-Type": "application/json"}
        responses.append(httpx.post(url, content=body, headers=headers, timeout=120))

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


@pytest.mark.slow
def test_the_largest_bodies_keep_memory_bounded_and_it_comes_back(registry, tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    shutil.copy2(registry.workspace / "mlflow.db", tmp_path / "workspace" / "mlflow.db")
    env = {"MLOPS_KIT_WORKSPACE": str(tmp_path / "workspace")}
    with api_process(tmp_path / "api.log", **env) as server:
        pid, url = server.process.pid, f"{server.url}/predict"
        limit = httpx.get(f"{server.url}/model").json()["max_body_bytes"]
        assert limit < 8_000_000  # derived from the penguin model's fields, not 20 MB
        record = {"bill_length_mm": 46.5, "bill_depth_mm": 17.9}
        record |= {"flipper_length_mm": 192.0, "body_mass_g": 3500.0, "island": "Dream"}
        assert httpx.post(url, json=[record] * 10_000, timeout=60).status_code == 200
        before = memory_mb(pid)["VmRSS"]

        worst = {
            "empty objects": b"[" + b"{}," * ((limit - 4) // 3) + b"{}]",
            "numbers": b"[" + b"1," * ((limit - 3) // 2) + b"1]",
        }
        for body in worst.values():
            assert len(body) <= limit
            responses = post_at_once(url, body)
            assert [r.status_code for r in responses] == [422] * 4
            assert all("over the limit of 10000" in r.json()["message"] for r in responses)
        one_byte_over = worst["numbers"] + b" " * (limit + 1 - len(worst["numbers"]))
        too_big = post_at_once(url, one_byte_over)
        assert [r.status_code for r in too_big] == [413] * 4
        assert str(limit) in too_big[0].json()["message"]

        peak = memory_mb(pid)["VmHWM"]
        assert peak < LIMIT_MB
        # what the refused bodies took is freed: measured ~+100 MB left of ~+180 MB at the peak
        # (allocator caches, reused by the next large body); held at the peak, it was ~+300 MB
        settled = before + 150
        deadline = time.monotonic() + 10
        while memory_mb(pid)["VmRSS"] > settled and time.monotonic() < deadline:
            time.sleep(0.2)
        assert memory_mb(pid)["VmRSS"] <= settled, (before, peak, memory_mb(pid))
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
