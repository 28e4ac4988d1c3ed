"""`mlops-kit spark up|status|down`: a real standalone master and two workers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from mlops_kit import spark_cluster
from mlops_kit.processes import HOST, alive, free_port, port_taken
from tests.helpers import run_cli


def _listening_addresses(pids: list[int]) -> set[str]:
    """The local addresses the processes' TCP sockets listen on (from /proc/net/tcp{,6})."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(fields[1].rsplit(":", 1)[0])
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, as IPv4 and IPv4-in-6


@pytest.mark.slow
def test_up_status_down(tmp_path: Path) -> None:
    root, port, ui_port = tmp_path / "spark", free_port(), free_port()

    up = run_cli("spark", "up", "--root", str(root), "--port", str(port), "--ui-port", str(ui_port))

    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == f"spark://{HOST}:{port}"  # stdout: the URL alone, for $(...)
    state = json.loads((root / "spark.json").read_text())
    pids = [state["master_pid"], *state["worker_pids"]]
    try:
        status = run_cli("spark", "status", "--root", str(root))
        assert f"spark://{HOST}:{port}" in status.stdout
        assert "workers  2" in status.stdout
        workers = httpx.get(f"http://{HOST}:{ui_port}/json/").json()["workers"]
        assert [w["state"] for w in workers] == ["ALIVE", "ALIVE"]
        assert all(w["host"] == HOST and w["cores"] == 1 for w in workers)
        listening = _listening_addresses(pids)
        assert listening and listening <= LOOPBACK  # nothing listens beyond this machine
        again = run_cli("spark", "up", "--root", str(root))
        assert again.returncode == 0 and "already up" in again.stderr
        assert json.loads((root / "spark.json").read_text())["master_pid"] == pids[0]
    finally:
        down = run_cli("spark", "down", "--root", str(root))

    assert down.returncode == 0 and "master" in down.stdout
    assert not any(alive(pid) for pid in pids)
    assert not port_taken(port) and not port_taken(ui_port)
    assert "workers  0" in run_cli("spark", "status", "--root", str(root)).stdout


def test_a_taken_port_is_named_with_the_option_to_change(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(spark_cluster.ClusterError, match=f"port {port} is taken.*--port"):
            spark_cluster.up(tmp_path / "spark", master_port=port, ui_port=free_port())
    assert spark_cluster.status(tmp_path / "spark")["master"] == "down"


def test_down_without_up_says_so(tmp_path: Path) -> None:
    assert spark_cluster.down(tmp_path / "spark") == [
        f"no Spark cluster under {tmp_path / 'spark'}"
    ]
