"""A real Spark standalone cluster on this machine: one master and two workers, all on 127.0.0.1.

    mlops-kit spark up
      master   spark://127.0.0.1:7077      (web UI http://127.0.0.1:8080, its JSON at /json/)
        ├─ worker 1   1 core, 1 GB for executors, Python = the kit's venv
        └─ worker 2   1 core, 1 GB for executors, Python = the kit's venv
      root/spark.json   ports and pids;   root/*.log   each process's log;   root/work/   executors

The processes come from the pyspark package itself (its ``bin/spark-class`` with ``SPARK_HOME`` set
to pyspark's folder): no Spark download. They start through `processes` and outlive ``up`` (as the
team stack's servers do); ``down`` stops them by the pids kept in the state file. ``mlops-kit score
--engine spark --master spark://127.0.0.1:7077`` then scores on the two workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlops_kit import processes, spark_session
from mlops_kit.processes import HOST, ProcessError, alive, port_taken
from mlops_kit.spark_session import JAVA_PACKAGE, SparkError

MASTER_PORT = 7077  # Spark's own defaults
UI_PORT = 8080
WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1g"  # what each worker offers its executors
DAEMON_MEMORY = "256m"  # the heap of the master and worker daemons themselves
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


class ClusterError(RuntimeError):
    """The cluster cannot be started or stopped; the message says why and what to do."""


@dataclass
class Cluster:
    """What `up` started: the master's ports and every pid."""

    root: Path
    master_port: int = MASTER_PORT
    ui_port: int = UI_PORT
    master_pid: int | None = None
    worker_pids: list[int] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.ui_port}"

    def pids(self) -> list[int]:
        """Every pid the state file names, master first."""
        return [p for p in [self.master_pid, *self.worker_pids] if p]


# ---------------------------------------------------------------- the state file


def _state_file(root: Path) -> Path:
    return root / "spark.json"


def _save(cluster: Cluster) -> None:
    state = {k: v for k, v in asdict(cluster).items() if k != "root"}
    _state_file(cluster.root).write_text(json.dumps(state, indent=2) + "\n")


def load(root: Path) -> Cluster | None:
    """The cluster recorded under root, or None if `up` never ran there."""
    path = _state_file(root)
    if not path.exists():
        return None
    return Cluster(root=root, **json.loads(path.read_text()))


# ---------------------------------------------------------------- Java


def install_java() -> None:
    """Install Debian's Java 17 (as root) where no java is found; ClusterError if it cannot."""
    if os.geteuid() != 0:
        raise ClusterError(f"Java is not installed: run `sudo apt-get install -y {JAVA_PACKAGE}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", JAVA_PACKAGE]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ClusterError(f"apt-get install {JAVA_PACKAGE} failed:\n{done.stderr[-2000:]}")


def _java(news: list[str]) -> None:
    try:
        spark_session.java()
    except SparkError:
        news.append(f"installing Java (Debian package {JAVA_PACKAGE})")
        install_java()
    try:
        spark_session.check_java()
    except SparkError as exc:
        raise ClusterError(str(exc)) from exc


# ---------------------------------------------------------------- the master's own view


def master_state(cluster: Cluster, timeout: float = 2.0) -> dict[str, Any] | None:
    """The master's JSON (its workers, cores, applications), or None if it does not answer."""
    try:
        answer = httpx.get(f"{cluster.ui_url}/json/", timeout=timeout)
        return answer.json() if answer.status_code == 200 else None
    except (httpx.TransportError, ValueError):
        return None


def alive_workers(cluster: Cluster) -> list[dict[str, Any]]:
    """The workers the master counts as ALIVE (each with its id, host, cores and memory)."""
    state = master_state(cluster) or {}
    return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]


# ---------------------------------------------------------------- up, down, status


def _command(spark_home: Path, main_class: str, *args: str) -> list[str]:
    return ["bash", str(spark_home / "bin" / "spark-class"), main_class, *args]


def _env() -> dict[str, str]:
    return {**os.environ, **spark_session.spark_env(), "SPARK_DAEMON_MEMORY": DAEMON_MEMORY}


def _start_master(cluster: Cluster, spark_home: Path, timeout: float) -> None:
    for port, option in ((cluster.master_port, "--port"), (cluster.ui_port, "--ui-port")):
        if port_taken(port):
            raise ClusterError(f"port {port} is taken: choose another with {option}")
    command = _command(
        spark_home, MASTER, "--host", HOST, "--port", str(cluster.master_port),
        "--webui-port", str(cluster.ui_port),
    )  # fmt: skip
    master = processes.start(command, cluster.root / "master.log", env=_env(), stop_at_exit=False)
    cluster.master_pid = master.pid
    _save(cluster)
    processes.wait_ready(
        master, lambda: master_state(cluster) is not None, "the Spark master", timeout
    )


def _start_worker(cluster: Cluster, spark_home: Path, number: int, memory: str) -> int:
    work = cluster.root / "work" / str(number)
    work.mkdir(parents=True, exist_ok=True)
    command = _command(
        spark_home, WORKER, "--host", HOST, "--cores", str(WORKER_CORES), "--memory", memory,
        "--webui-port", str(processes.free_port()), "--work-dir", str(work), cluster.master_url,
    )  # fmt: skip
    log = cluster.root / f"worker-{number}.log"
    return processes.start(command, log, env=_env(), stop_at_exit=False).pid


def _wait_workers(cluster: Cluster, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(alive_workers(cluster)) >= count:
            return
        if not all(alive(pid) for pid in cluster.worker_pids):
            break
        time.sleep(0.3)
    logs = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
        for log in sorted(cluster.root.glob("worker-*.log"))
    )
    raise ClusterError(
        f"{len(alive_workers(cluster))} of {count} Spark workers registered with "
        f"{cluster.master_url} within {timeout:.0f} s:\n{logs}"
    )


def up(
    root: Path,
    master_port: int = MASTER_PORT,
    ui_port: int = UI_PORT,
    workers: int = WORKERS,
    worker_memory: str = WORKER_MEMORY,
    timeout: float = 90.0,
) -> tuple[Cluster, list[str]]:
    """Start the master and the workers that are not running yet; the cluster and news."""
    root = root.absolute()
    root.mkdir(parents=True, exist_ok=True)
    news: list[str] = []
    try:
        spark_home = spark_session.spark_home()
    except SparkError as exc:
        raise ClusterError(str(exc)) from exc
    _java(news)
    cluster = load(root)
    if cluster is None or not alive(cluster.master_pid):
        cluster = Cluster(root, master_port, ui_port)
        try:
            _start_master(cluster, spark_home, timeout)
        except ProcessError as exc:
            cluster.master_pid = None
            _save(cluster)
            raise ClusterError(str(exc)) from exc
        news.append(f"Spark master up on {cluster.master_url} (web UI {cluster.ui_url})")
    else:
        news.append(f"Spark master already up on {cluster.master_url}")
    running = [pid for pid in cluster.worker_pids if alive(pid)]
    for number in range(len(running) + 1, workers + 1):
        running.append(_start_worker(cluster, spark_home, number, worker_memory))
    started = len(running) - len([p for p in cluster.worker_pids if alive(p)])
    cluster.worker_pids = running
    _save(cluster)
    _wait_workers(cluster, workers, timeout)
    if started:
        news.append(f"{started} Spark worker(s) up ({WORKER_CORES} core, {worker_memory} each)")
    else:
        news.append(f"{workers} Spark workers already up")
    return cluster, news


def down(root: Path) -> list[str]:
    """Stop the workers, then the master; what happened."""
    cluster = load(root.absolute())
    if cluster is None:
        return [f"no Spark cluster under {root}"]
    news = []
    for pid in cluster.worker_pids:
        if alive(pid):
            processes.stop_group(pid)
            news.append(f"Spark worker (pid {pid}) stopped")
    if alive(cluster.master_pid):
        processes.stop_group(cluster.master_pid)  # type: ignore[arg-type]
        news.append(f"Spark master {cluster.master_url} stopped")
    cluster.master_pid, cluster.worker_pids = None, []
    _save(cluster)
    return news or ["nothing was running"]


def status(root: Path) -> dict[str, object]:
    """Where the master is, whether it answers, and how many workers it counts alive."""
    cluster = load(root.absolute())
    if cluster is None or not alive(cluster.master_pid):
        return {"master": "down", "ui": "down", "workers": 0, "root": str(root)}
    answers = master_state(cluster) is not None
    return {
        "master": cluster.master_url if answers else f"{cluster.master_url} (does not answer)",
        "ui": cluster.ui_url if answers else "down",
        "workers": len(alive_workers(cluster)),
        "root": str(cluster.root),
    }
