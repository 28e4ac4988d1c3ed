"""A SQLite prediction log for the tests here (the PostgreSQL one is tests/store/conftest.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite log in a folder that does not exist yet."""
    return f"sqlite:///{tmp_path / 'logs' / 'predictions.db'}"
