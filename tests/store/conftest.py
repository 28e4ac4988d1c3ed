"""A real PostgreSQL for the store's tests, started once per session when a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from mlops_kit.store.db import metadata
from tests.store.postgres import Postgres, throwaway_cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway cluster on a free port (skipped, or failed in CI, without PostgreSQL)."""
    with throwaway_cluster() as running:
        yield running


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """The URL of the cluster's `kit` database, emptied of the store's tables."""
    engine = sa.create_engine(postgres.url)
    metadata.drop_all(engine)
    engine.dispose()
    return postgres.url
