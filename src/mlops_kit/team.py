"""A team's stack on one machine: PostgreSQL for MLflow and the kit's store, `mlflow server`, Prometheus.

    mlops-kit team up
      root/pg            a private PostgreSQL cluster on 127.0.0.1:55432, run by the `postgres` user
        ├─ database mlflow ◀── mlflow server --backend-store-uri … on 127.0.0.1:5000
        └─ database kit    ◀── MLOPS_KIT_STORE_URL: prediction log, review sets, labels
      root/mlartifacts   models and plots, uploaded and read through the server (proxied artifacts)
      root/prometheus    Prometheus on 127.0.0.1:9090, scraping the API's /metrics on 127.0.0.1:8000
      root/team.json     ports, the role's password and the servers' pids (readable by root only)

``up`` prints two ``export`` lines; with them notebooks, CLI and API use the team's stack unchanged.
``down`` stops them all (PostgreSQL with ``pg_ctl stop -m fast``); the data stays for the next
``up``. PostgreSQL itself is `postgres`; the servers start through `services` and outlive ``up``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from mlops_kit import postgres, processes, services
from mlops_kit.postgres import ROLE, Cluster, PostgresError
from mlops_kit.processes import HOST, ProcessError, alive, port_taken

PG_PORT = 55432  # not 5432: a system cluster may hold that one
MLFLOW_PORT = 5000
PROMETHEUS_PORT = 9090
API_PORT = 8000  # the API Prometheus scrapes (`mlops-kit serve`'s default port)


class TeamError(RuntimeError):
    """The stack cannot be started or stopped; the message says why and what to do."""


@dataclass
class Team:
    """What `up` started: where it is and the environment that points the kit at it."""

    root: Path
    pg_port: int
    mlflow_port: int
    password: str
    mlflow_pid: int | None = None
    postgres_pid: int | None = None
    prometheus_port: int = PROMETHEUS_PORT
    prometheus_pid: int | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def store_url(self) -> str:
        return f"postgresql+psycopg://{ROLE}:{self.password}@{HOST}:{self.pg_port}/kit"

    @property
    def mlflow_backend(self) -> str:
        return f"postgresql+psycopg://{ROLE}:{self.password}@{HOST}:{self.pg_port}/mlflow"

    def env(self) -> dict[str, str]:
        """The variables that make notebooks, CLI and API use the team's stack."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLOPS_KIT_STORE_URL": self.store_url}

    def exports(self) -> str:
        """`export NAME=value` lines for a shell (`eval "$(mlops-kit team up)"`)."""
        return "\n".join(f"export {name}={value}" for name, value in self.env().items())


# ---------------------------------------------------------------- the state file


def _state_file(root: Path) -> Path:
    return root / "team.json"


def _save(team: Team) -> None:
    path = _state_file(team.root)
    state = {
        "pg_port": team.pg_port,
        "mlflow_port": team.mlflow_port,
        "password": team.password,
        "mlflow_pid": team.mlflow_pid,
        "postgres_pid": team.postgres_pid,
        "prometheus_port": team.prometheus_port,
        "prometheus_pid": team.prometheus_pid,
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(state, indent=2) + "\n")


def load(root: Path) -> Team | None:
    """The stack recorded under root, or None if `up` never ran there."""
    path = _state_file(root)
    if not path.exists():
        return None
    return Team(root=root, **json.loads(path.read_text()))


def cluster_of(team: Team, bin_dir: Path | None = None) -> Cluster:
    """The team's PostgreSQL cluster."""
    bin_dir = bin_dir or postgres.postgres_bin()
    if bin_dir is None:
        raise TeamError("PostgreSQL is not installed (run `mlops-kit team up` as root)")
    return Cluster(team.root / "pg", team.pg_port, bin_dir)


# ---------------------------------------------------------------- up, down, status


def _answers(url: str) -> bool:
    return processes.http_ready(f"{url}/health")()


def _free(port: int, option: str) -> None:
    if port_taken(port):
        raise TeamError(f"port {port} is taken: choose another with {option}")


def _up_postgres(team: Team, bin_dir: Path, news: list[str]) -> None:
    cluster = cluster_of(team, bin_dir)
    if postgres.init_cluster(cluster):
        news.append(f"created a PostgreSQL cluster in {cluster.data}")
    if postgres.cluster_running(cluster):
        news.append(f"PostgreSQL already up on {HOST}:{cluster.port}")
    else:
        _free(cluster.port, "--pg-port")
        postgres.start_cluster(cluster)
        news.append(f"PostgreSQL up on {HOST}:{cluster.port}")
    postgres.ensure_databases(cluster, team.password)
    team.postgres_pid = postgres.postmaster_pid(cluster)


def _up_mlflow(team: Team, timeout: float, news: list[str]) -> None:
    log = team.root / "mlflow-server.log"
    if alive(team.mlflow_pid):
        if not _answers(team.tracking_uri):
            raise TeamError(
                f"mlflow server (pid {team.mlflow_pid}) runs but does not answer on "
                f"{team.tracking_uri}: see {log}, or `mlops-kit team down`"
            )
        news.append(f"mlflow server already up on {team.tracking_uri}")
        return
    _free(team.mlflow_port, "--mlflow-port")
    server = services.start_mlflow_server(
        team.mlflow_backend, team.root / "mlartifacts", team.mlflow_port, log, timeout, detach=True
    )
    team.mlflow_pid = server.process.pid
    news.append(f"mlflow server up on {team.tracking_uri} (log: {log})")


def _up_prometheus(team: Team, port: int, api_port: int, timeout: float, news: list[str]) -> None:
    if alive(team.prometheus_pid):
        news.append(f"Prometheus already up on http://{HOST}:{team.prometheus_port}")
        return
    _free(port, "--prometheus-port")
    team.prometheus_port = port
    try:
        server = services.start_prometheus(
            [f"{HOST}:{api_port}"], team.root / "prometheus", port, 5, timeout, detach=True
        )
    except FileNotFoundError as exc:
        raise TeamError(
            "Prometheus is not installed: run `make system-deps` (Debian: prometheus)"
        ) from exc
    team.prometheus_pid = server.process.pid
    news.append(f"Prometheus up on {server.url}, scraping the API's /metrics on {HOST}:{api_port}")


def up(
    root: Path,
    pg_port: int = PG_PORT,
    mlflow_port: int = MLFLOW_PORT,
    timeout: float = 120.0,
    prometheus_port: int | None = PROMETHEUS_PORT,
    api_port: int = API_PORT,
) -> tuple[Team, list[str]]:
    """Start what is not running yet (PostgreSQL, its databases, mlflow server, Prometheus
    scraping the API unless prometheus_port is None); the stack and news."""
    root = root.absolute()
    root.mkdir(parents=True, exist_ok=True)
    news: list[str] = []
    try:
        bin_dir = postgres.postgres_bin()
        if bin_dir is None:
            news.append("installing PostgreSQL (Debian package postgresql)")
            bin_dir = postgres.install_postgres()
        team = load(root) or Team(root, pg_port, mlflow_port, secrets.token_hex(16))
        if not postgres.cluster_running(cluster_of(team, bin_dir)):  # a running part keeps its port
            team.pg_port = pg_port
        if not alive(team.mlflow_pid):
            team.mlflow_port = mlflow_port
        _up_postgres(team, bin_dir, news)
        _save(team)
        _up_mlflow(team, timeout, news)
        _save(team)
        if prometheus_port is not None:
            _up_prometheus(team, prometheus_port, api_port, timeout, news)
            _save(team)
    except (PostgresError, ProcessError) as exc:
        raise TeamError(str(exc)) from exc
    return team, news


def down(root: Path) -> list[str]:
    """Stop mlflow server and PostgreSQL (data and password stay for the next `up`); what happened."""
    team = load(root.absolute())
    if team is None:
        return [f"no team stack under {root}"]
    news = []
    for name, pid in (("Prometheus", team.prometheus_pid), ("mlflow server", team.mlflow_pid)):
        if alive(pid):
            processes.stop_group(pid)  # type: ignore[arg-type]
            news.append(f"{name} stopped")
    cluster = cluster_of(team)
    if postgres.cluster_running(cluster):
        try:
            postgres.stop_cluster(cluster)
        except PostgresError as exc:
            raise TeamError(str(exc)) from exc
        news.append("PostgreSQL stopped")
    team.mlflow_pid = team.postgres_pid = team.prometheus_pid = None
    _save(team)
    return news or ["nothing was running"]


def status(root: Path) -> dict[str, object]:
    """Whether each part runs and answers, and where."""
    team = load(root.absolute())
    if team is None:
        return {"root": str(root), "postgres": "never started", "mlflow": "never started"}
    running = postgres.cluster_running(cluster_of(team))
    prometheus = f"up on http://{HOST}:{team.prometheus_port}"
    return {
        "root": str(team.root),
        "postgres": f"up on {HOST}:{team.pg_port}" if running else "down",
        "mlflow": f"up on {team.tracking_uri}" if _answers(team.tracking_uri) else "down",
        "prometheus": prometheus if alive(team.prometheus_pid) else "down",
        "store": sa.engine.make_url(team.store_url).render_as_string(hide_password=True),
    }
