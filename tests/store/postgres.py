"""A throwaway PostgreSQL cluster for tests, started with the team stack's own functions (postgres.py)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops_kit import postgres
from mlops_kit.processes import free_port

MISSING = (
    "PostgreSQL server binaries are missing: run `make system-deps` (Debian package postgresql)"
)


def require_postgres() -> Path:
    """The binaries' folder; without them a test fails in CI (CI set) and is skipped elsewhere."""
    found = postgres.postgres_bin()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return found


def reachable_folder(prefix: str) -> Path:
    """A new folder under the system's temp dir that the `postgres` user may enter.

    pytest's tmp_path is private to root (0700), and PostgreSQL runs as `postgres`.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


@dataclass(frozen=True)
class Postgres:
    """A running cluster and the URL of its `kit` database (role `mlops`)."""

    cluster: postgres.Cluster
    url: str


@contextmanager
def throwaway_cluster() -> Iterator[Postgres]:
    """A cluster on a free port in a temp folder, removed afterwards."""
    bin_dir = require_postgres()
    folder = reachable_folder("mlops-kit-pg-")
    cluster = postgres.Cluster(folder / "pg", free_port(), bin_dir)
    password = secrets.token_hex(8)
    try:
        postgres.init_cluster(cluster)
        postgres.start_cluster(cluster)
        postgres.ensure_databases(cluster, password, ("kit",))
        yield Postgres(cluster, cluster.url(postgres.ROLE, password, "kit"))
    finally:
        postgres.stop_cluster(cluster, mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)
