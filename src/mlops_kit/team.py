"""A team's stack on one machine: PostgreSQL for MLflow and the kit's store, and `mlflow server`.

    mlops-kit team up
      root/pg            a private PostgreSQL cluster on 127.0.0.1:55432, run by the `postgres` user
        ├─ database mlflow ◀── mlflow server --backend-store-uri … on 127.0.0.1:5000
        └─ database kit    ◀── MLOPS_KIT_STORE_URL: prediction log, review sets, labels
      root/mlartifacts   models and plots, uploaded and read through the server (proxied artifacts)
      root/team.json     ports, the role's password and the server's pid (readable by root only)

``up`` prints two ``export`` lines; with them notebooks, CLI and API use the team's stack unchanged.
``down`` stops both (PostgreSQL with ``pg_ctl stop -m fast``); the data stays for the next ``up``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

HOST = "127.0.0.1"
PG_PORT = 55432  # not 5432: a system cluster may hold that one
MLFLOW_PORT = 5000
PROMETHEUS_PORT = 9090
API_PORT = 8000  # the API Prometheus scrapes (`mlops-kit serve`'s default port)
ROLE = "mlops"
DATABASES = ("mlflow", "kit")
OWNER = "postgres"  # the OS user that runs PostgreSQL (it refuses to run as root)


class TeamError(RuntimeError):
    """The stack cannot be started or stopped; the message says why and what to do."""


# ---------------------------------------------------------------- PostgreSQL binaries


def postgres_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL server binaries (Debian layout), or None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def install_postgres() -> Path:
    """Install Debian's `postgresql` package with apt-get (as root) and return its bin folder."""
    if os.geteuid() != 0:
        raise TeamError("PostgreSQL is not installed: run `sudo apt-get install -y postgresql`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise TeamError(f"apt-get install postgresql failed:\n{done.stderr[-2000:]}")
    found = postgres_bin()
    if found is None:
        raise TeamError("apt-get installed postgresql but no pg_ctl was found")
    return found


# ---------------------------------------------------------------- a private cluster


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL cluster in a folder of its own, on 127.0.0.1:port and a private socket."""

    folder: Path  # holds data/, run/ (the socket) and postgres.log
    port: int
    bin: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "run"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, user: str, password: str | None, database: str) -> str:
        """A SQLAlchemy URL (psycopg 3) for a database of this cluster over TCP."""
        auth = f"{user}:{password}" if password else user
        return f"postgresql+psycopg://{auth}@{HOST}:{self.port}/{database}"

    def admin_url(self) -> str:
        """The superuser over the private socket (trusted: only its owner and root reach it)."""
        return f"postgresql+psycopg://{OWNER}@/postgres?host={self.socket_dir}&port={self.port}"


def _as_owner(command: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root (initdb and postgres refuse root)."""
    return ["runuser", "-u", OWNER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise TeamError(
            f"{what} failed ({done.returncode}):\n{(done.stderr or done.stdout)[-2000:]}"
        )


def init_cluster(cluster: Cluster) -> bool:
    """Create the cluster's folders and data directory unless they exist; True if it was created."""
    if (cluster.data / "PG_VERSION").exists():
        return False
    cluster.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cluster.data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(cluster.folder, OWNER, OWNER)
        for path in (cluster.data, cluster.socket_dir):
            shutil.chown(path, OWNER, OWNER)
    probe = subprocess.run(_as_owner(["test", "-w", str(cluster.data)]))
    if probe.returncode != 0:
        raise TeamError(
            f"the {OWNER} user cannot write {cluster.data}: its parent folders must be "
            "searchable by others (chmod o+x), or choose another root folder"
        )
    os.chmod(cluster.data, 0o700)
    initdb = [
        str(cluster.bin / "initdb"), "-D", str(cluster.data), "-U", OWNER, "-E", "UTF8",
        "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256",
    ]  # fmt: skip
    _run(initdb, "initdb")
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.write("\n# the kit's settings for this cluster (rewritten at each start)\n")
        conf.write("include_if_exists = 'kit.conf'\n")
    return True


def postmaster_pid(cluster: Cluster) -> int | None:
    """The pid of the cluster's running postmaster, or None."""
    pid_file = cluster.data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def cluster_running(cluster: Cluster) -> bool:
    """True when the cluster's postmaster is alive."""
    return postmaster_pid(cluster) is not None


def start_cluster(cluster: Cluster, timeout: int = 60) -> None:
    """Start the cluster listening on 127.0.0.1:port only; returns once it accepts connections."""
    settings = (
        f"listen_addresses = '{HOST}'\nport = {cluster.port}\n"
        f"unix_socket_directories = '{cluster.socket_dir}'\n"
    )
    (cluster.data / "kit.conf").write_text(settings)
    if os.geteuid() == 0:
        shutil.chown(cluster.data / "kit.conf", OWNER, OWNER)
    pg_ctl = [str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.log)]
    done = subprocess.run(
        _as_owner([*pg_ctl, "-w", "-t", str(timeout), "start"]),
        capture_output=True,
        text=True,
        start_new_session=True,  # the server outlives the shell that started it
    )
    if done.returncode != 0:
        tail = cluster.log.read_text(errors="replace")[-2000:] if cluster.log.exists() else ""
        raise TeamError(f"PostgreSQL did not start:\n{done.stderr}{tail}")


def stop_cluster(cluster: Cluster, mode: str = "fast") -> None:
    """Stop the cluster (`fast`: roll back open transactions, then shut down cleanly)."""
    if cluster_running(cluster):
        _run(
            [str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-m", mode, "-w", "stop"],
            "pg_ctl stop",
        )


def restart_cluster(cluster: Cluster) -> None:
    """Stop and start the cluster again, as an operator's `pg_ctl restart -m fast` does."""
    stop_cluster(cluster)
    start_cluster(cluster)


def ensure_databases(
    cluster: Cluster, password: str, databases: tuple[str, ...] = DATABASES
) -> None:
    """Create the login role and its databases where they are missing (idempotent)."""
    engine = sa.create_engine(cluster.admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            role = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE})
            verb = "ALTER" if role.first() else "CREATE"
            # DDL takes no parameters; the password is hex, so it needs no quoting
            conn.exec_driver_sql(f"{verb} ROLE {ROLE} LOGIN PASSWORD '{password}'")
            have = set(conn.scalars(sa.text("SELECT datname FROM pg_database")))
            for name in databases:
                if name not in have:
                    conn.exec_driver_sql(f"CREATE DATABASE {name} OWNER {ROLE}")
    finally:
        engine.dispose()


# ---------------------------------------------------------------- mlflow server


def _answers(url: str, path: str = "/health") -> bool:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that has exited
            return False
    except ChildProcessError:
        pass  # not our child: ask the system
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_mlflow(backend_uri: str, artifacts: Path, port: int, log: Path, timeout: float) -> int:
    """Start `mlflow server` (one worker, proxied artifacts) in its own process group; its pid."""
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_uri,
        "--serve-artifacts", "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_KIT_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # the default starts many processes
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with open(log, "a") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TeamError(f"mlflow server exited with {proc.returncode}; see {log}")
        if _answers(url):
            return proc.pid
        time.sleep(0.3)
    stop_process_group(proc.pid)
    raise TeamError(f"mlflow server did not answer within {timeout:.0f} s; see {log}")


def start_prometheus(folder: Path, port: int, api_port: int, timeout: float) -> int:
    """Start Prometheus (Debian's package) scraping the API's GET /metrics every 5 s; its pid."""
    from mlops_kit.serving.process import prometheus_config  # the config the tests use too

    binary = shutil.which("prometheus")
    if binary is None:
        raise TeamError("Prometheus is not installed: run `make system-deps` (Debian: prometheus)")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(prometheus_config([f"{HOST}:{api_port}"], interval=5))
    command = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={HOST}:{port}", "--log.level=warn",
    ]  # fmt: skip
    log = folder / "prometheus.log"
    with open(log, "a") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TeamError(f"prometheus exited with {proc.returncode}; see {log}")
        if _answers(f"http://{HOST}:{port}", "/-/ready"):
            return proc.pid
        time.sleep(0.3)
    stop_process_group(proc.pid)
    raise TeamError(f"prometheus did not answer within {timeout:.0f} s; see {log}")


def stop_process_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM a process group (gunicorn and its worker), SIGKILL it if it is still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if not _alive(pid):
            return


# ---------------------------------------------------------------- the stack


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
    bin_dir = bin_dir or postgres_bin()
    if bin_dir is None:
        raise TeamError("PostgreSQL is not installed (run `mlops-kit team up` as root)")
    return Cluster(team.root / "pg", team.pg_port, bin_dir)


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
    bin_dir = postgres_bin()
    if bin_dir is None:
        news.append("installing PostgreSQL (Debian package postgresql)")
        bin_dir = install_postgres()
    team = load(root) or Team(root, pg_port, mlflow_port, secrets.token_hex(16))
    if not cluster_running(cluster_of(team, bin_dir)):  # a running part keeps its port
        team.pg_port = pg_port
    if not _alive(team.mlflow_pid):
        team.mlflow_port = mlflow_port
    cluster = cluster_of(team, bin_dir)
    if init_cluster(cluster):
        news.append(f"created a PostgreSQL cluster in {cluster.data}")
    if cluster_running(cluster):
        news.append(f"PostgreSQL already up on {HOST}:{cluster.port}")
    else:
        if _port_taken(cluster.port):
            raise TeamError(f"port {cluster.port} is taken: choose another with --pg-port")
        start_cluster(cluster)
        news.append(f"PostgreSQL up on {HOST}:{cluster.port}")
    ensure_databases(cluster, team.password)
    team.postgres_pid = postmaster_pid(cluster)
    _save(team)
    if _alive(team.mlflow_pid):
        if not _answers(team.tracking_uri):
            raise TeamError(
                f"mlflow server (pid {team.mlflow_pid}) runs but does not answer on "
                f"{team.tracking_uri}: see {root / 'mlflow-server.log'}, or `mlops-kit team down`"
            )
        news.append(f"mlflow server already up on {team.tracking_uri}")
    else:
        if _port_taken(team.mlflow_port):
            raise TeamError(f"port {team.mlflow_port} is taken: choose another with --mlflow-port")
        log = root / "mlflow-server.log"
        team.mlflow_pid = start_mlflow(
            team.mlflow_backend, root / "mlartifacts", team.mlflow_port, log, timeout
        )
        _save(team)
        news.append(f"mlflow server up on {team.tracking_uri} (log: {log})")
    if prometheus_port is None:
        return team, news
    prometheus = f"http://{HOST}:{team.prometheus_port}"
    if _alive(team.prometheus_pid):
        news.append(f"Prometheus already up on {prometheus}")
    else:
        if _port_taken(prometheus_port):
            raise TeamError(
                f"port {prometheus_port} is taken: choose another with --prometheus-port"
            )
        team.prometheus_port = prometheus_port
        prometheus = f"http://{HOST}:{prometheus_port}"
        team.prometheus_pid = start_prometheus(
            root / "prometheus", prometheus_port, api_port, timeout
        )
        _save(team)
        news.append(
            f"Prometheus up on {prometheus}, scraping the API's /metrics on {HOST}:{api_port}"
        )
    return team, news


def down(root: Path) -> list[str]:
    """Stop mlflow server and PostgreSQL (data and password stay for the next `up`); what happened."""
    team = load(root.absolute())
    if team is None:
        return [f"no team stack under {root}"]
    news = []
    if _alive(team.prometheus_pid):
        stop_process_group(team.prometheus_pid)  # type: ignore[arg-type]
        news.append("Prometheus stopped")
    if _alive(team.mlflow_pid):
        stop_process_group(team.mlflow_pid)  # type: ignore[arg-type]
        news.append("mlflow server stopped")
    cluster = cluster_of(team)
    if cluster_running(cluster):
        stop_cluster(cluster)
        news.append("PostgreSQL stopped")
    team.mlflow_pid = team.postgres_pid = team.prometheus_pid = None
    _save(team)
    return news or ["nothing was running"]


def status(root: Path) -> dict[str, object]:
    """Whether each part runs and answers, and where."""
    team = load(root.absolute())
    if team is None:
        return {"root": str(root), "postgres": "never started", "mlflow": "never started"}
    cluster = cluster_of(team)
    running = cluster_running(cluster)
    return {
        "root": str(team.root),
        "postgres": f"up on {HOST}:{team.pg_port}" if running else "down",
        "mlflow": f"up on {team.tracking_uri}" if _answers(team.tracking_uri) else "down",
        "prometheus": f"up on http://{HOST}:{team.prometheus_port}"
        if _alive(team.prometheus_pid)
        else "down",
        "store": sa.engine.make_url(team.store_url).render_as_string(hide_password=True),
    }
