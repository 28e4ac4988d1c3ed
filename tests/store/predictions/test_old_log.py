"""A log made before the kit kept the threshold, the record's key and the source: read and written
on, its old rows without them (and counted as the API's, which made them all)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops_kit.config import Settings
from mlops_kit.store.predictions.window import LogWindow, read_predictions
from mlops_kit.store.predictions.writer import PredictionLog
from tests.store.postgres import Postgres
from tests.store.predictions.entries import entry

# the table as the kit created it until the threshold was kept (SQLAlchemy's DDL of that time)
OLD_TABLE = """
CREATE TABLE predictions (
    id {id} NOT NULL,
    request_id VARCHAR(64) NOT NULL,
    created_at {time} NOT NULL,
    record_index INTEGER NOT NULL,
    model_name VARCHAR(200) NOT NULL,
    model_version VARCHAR(32) NOT NULL,
    input JSON NOT NULL,
    predicted VARCHAR(200) NOT NULL,
    confidence FLOAT NOT NULL,
    probabilities JSON NOT NULL,
    low_confidence BOOLEAN NOT NULL,
    PRIMARY KEY (id)
)
"""
OLD_INDEX = "CREATE INDEX ix_predictions_created_at ON predictions (created_at)"
OLD_ROW = (
    "INSERT INTO predictions (request_id, created_at, record_index, model_name, model_version, "
    "input, predicted, confidence, probabilities, low_confidence) VALUES ('before', '{when}', 0, "
    '\'penguins-classifier\', \'3\', \'{{"bill_length_mm":40.0,"island":"Dream","sex":null}}\', '
    '\'Adelie\', 0.6, \'{{"Adelie":0.6,"Chinstrap":0.3,"Gentoo":0.1}}\', TRUE)'
)


def old_sqlite_log(url: str) -> None:
    """A SQLite store file as an older kit left it: the old table, one row logged."""
    path = Path(sa.engine.make_url(url).database)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_TABLE.format(id="INTEGER", time="DATETIME"))
        conn.execute(OLD_INDEX)
        conn.execute(OLD_ROW.format(when="2026-11-28 09:30:15.000250"))
    conn.close()


def columns(url: str) -> list[str]:
    """The log table's columns, as the database has them."""
    engine = sa.create_engine(url)
    try:
        return [c["name"] for c in sa.inspect(engine).get_columns("predictions")]
    finally:
        engine.dispose()


def test_an_old_log_is_read_with_its_rows_threshold_missing(url: str, tmp_path: Path) -> None:
    old_sqlite_log(url)
    settings = Settings(workspace=tmp_path, store_url=url)
    table = read_predictions(settings)
    assert table["request_id"].tolist() == ["before"] and table["island"].tolist() == ["Dream"]
    assert table["low_confidence_threshold"].isna().all()
    assert table["record_key"].isna().all() and table["source"].isna().all()
    with LogWindow(settings) as window:
        assert window.count() == 1 and window.thresholds() == []
    with LogWindow(settings, source="api") as window:
        assert window.count() == 1  # logged before the source was kept: the API's
    with LogWindow(settings, source="batch") as window:
        assert window.count() == 0
    assert read_predictions(settings, source="batch").empty
    # the reader brought the table up
    assert columns(url)[-3:] == ["low_confidence_threshold", "record_key", "source"]


@pytest.mark.parametrize("fast_sqlite", [True, False], ids=["sqlite-driver", "sqlalchemy-core"])
def test_the_writer_goes_on_writing_an_old_log(url: str, tmp_path: Path, fast_sqlite: bool) -> None:
    old_sqlite_log(url)
    log = PredictionLog(url, fast_sqlite=fast_sqlite)
    log.start()
    log.submit(entry("after", 2, threshold=0.55, keys=["car 1", "car 2"]))
    log.submit(entry("nightly", 1, keys=["car 3"], source="batch"))
    log.close()
    assert log.status() == {"written": 3, "pending": 0, "failed": 0, "error": None}
    settings = Settings(workspace=tmp_path, store_url=url)
    table = read_predictions(settings)
    assert table["request_id"].tolist() == ["before", "after", "after", "nightly"]
    assert table["low_confidence_threshold"].tolist()[1:3] == [0.55, 0.55]
    assert table["low_confidence_threshold"].isna().tolist() == [True, False, False, False]
    assert table["record_key"].isna().tolist() == [True, False, False, False]
    assert table["record_key"].tolist()[1:] == ["car 1", "car 2", "car 3"]
    assert table["source"].tolist()[1:] == ["api", "api", "batch"]
    api = read_predictions(settings, source="api")  # the old row counts as the API's
    assert api["request_id"].tolist() == ["before", "after", "after"]
    assert read_predictions(settings, source="batch")["record_key"].tolist() == ["car 3"]


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "sqlalchemy-core"])
def test_the_writer_goes_on_writing_an_old_log_on_postgres(
    postgres: Postgres, pg_url: str, tmp_path: Path, copy: bool
) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(OLD_TABLE.format(id="BIGSERIAL", time="TIMESTAMP WITH TIME ZONE"))
        conn.exec_driver_sql(OLD_INDEX)
        conn.exec_driver_sql(OLD_ROW.format(when="2026-11-28 09:30:15.000250+00"))
    engine.dispose()
    log = PredictionLog(pg_url, copy=copy)
    log.start()
    log.submit(entry("after", 2, threshold=0.55, keys=["car 1", 2]))
    log.submit(entry("nightly", 1, threshold=0.55, keys=["car 3"], source="batch"))
    log.close()
    assert log.status() == {"written": 3, "pending": 0, "failed": 0, "error": None}
    table = read_predictions(Settings(workspace=tmp_path, store_url=pg_url))
    assert table["request_id"].tolist() == ["before", "after", "after", "nightly"]
    assert table["low_confidence_threshold"].isna().tolist() == [True, False, False, False]
    assert table["record_key"].isna().tolist() == [True, False, False, False]
    assert table["record_key"].tolist()[1:] == ["car 1", "2", "car 3"]
    assert table["source"].tolist()[1:] == ["api", "api", "batch"]
    with LogWindow(Settings(workspace=tmp_path, store_url=pg_url)) as window:
        assert window.thresholds() == [0.55]
    with LogWindow(Settings(workspace=tmp_path, store_url=pg_url), source="api") as window:
        assert window.count() == 3  # the old row (no source) counts as the API's
    with LogWindow(Settings(workspace=tmp_path, store_url=pg_url), source="batch") as window:
        assert window.count() == 1 and window.totals().predictions == 1
