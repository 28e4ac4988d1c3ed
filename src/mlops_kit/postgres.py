"""PostgreSQL for the team stack and the tests: Debian's binaries, a private cluster, its databases.

The cluster runs as the `postgres` user (PostgreSQL refuses root) in a folder of its own, on
127.0.0.1 and a private socket. `pg_ctl` starts it (``-w``: it waits until the server accepts
connections) and stops it (``-m fast``): the server forks itself into the background, so the
generic helpers of `processes` would only see pg_ctl, not the postmaster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from mlops_kit.processes import HOST, alive

ROLE = "mlops"
DATABASES = ("mlflow", "kit")
OWNER = "postgres"  # the OS user that runs PostgreSQL (it refuses to run as root)


class PostgresError(RuntimeError):
    """PostgreSQL cannot be installed, started or stopped; the message says why and what to do."""


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
        raise PostgresError("PostgreSQL is not installed: run `sudo apt-get install -y postgresql`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise PostgresError(f"apt-get install postgresql failed:\n{done.stderr[-2000:]}")
    found = postgres_bin()
    if found is None:
        raise PostgresError("apt-get installed postgresql but no pg_ctl was found")
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
        raise PostgresError(
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
        raise PostgresError(
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
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


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
        raise PostgresError(f"PostgreSQL did not start:\n{done.stderr}{tail}")


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
