"""The prediction log: no lost rows under concurrency, WAL, flushed on close, read as a table."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops_kit.config import Settings
from mlops_kit.store.predictions import LogEntry, PredictionLog, predictions, read_predictions

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


def entry(request_id: str, rows: int, when: datetime | None = None) -> LogEntry:
    """A served request of `rows` records."""
    records = [{"bill_length_mm": 40.0 + i, "island": "Dream", "sex": None} for i in range(rows)]
    proba = [[0.6, 0.3, 0.1] for _ in range(rows)]
    return LogEntry.from_records(
        request_id=request_id,
        created_at=when or datetime.now(UTC),
        model_name="penguins-classifier",
        model_version="3",
        records=records,
        predicted=["Adelie"] * rows,
        confidence=[0.6] * rows,
        probabilities=proba,
        classes=CLASSES,
        low_confidence=[True] * rows,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite log in a folder that does not exist yet."""
    return f"sqlite:///{tmp_path / 'logs' / 'predictions.db'}"


@pytest.mark.parametrize("fast_sqlite", [True, False], ids=["sqlite-driver", "sqlalchemy-core"])
def test_concurrent_requests_lose_no_rows(url: str, fast_sqlite: bool) -> None:
    log = PredictionLog(url, max_rows_per_write=50, fast_sqlite=fast_sqlite)
    log.start()

    def client(k: int) -> None:
        for j in range(25):
            log.submit(entry(f"t{k}-{j}", rows=1 + (j % 4)))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.flush(30)
    log.close()
    expected = 8 * sum(1 + (j % 4) for j in range(25))
    assert log.status() == {"written": expected, "pending": 0, "failed": 0, "error": None}
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(predictions.c.request_id, predictions.c.record_index)).all()
    engine.dispose()
    assert len(rows) == len(set(rows)) == expected
    assert {r.request_id for r in rows} == {f"t{k}-{j}" for k in range(8) for j in range(25)}


def test_sqlite_log_runs_in_wal_mode(url: str) -> None:
    log = PredictionLog(url)
    log.start()
    log.submit(entry("r1", 1))
    log.close()
    path = sa.engine.make_url(url).database
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_close_writes_what_is_still_queued(url: str) -> None:
    log = PredictionLog(url)
    log.start()
    for i in range(200):
        log.submit(entry(f"r{i}", 5))
    log.close()  # no flush first
    assert log.status()["written"] == 1000


@pytest.mark.parametrize("fast_sqlite", [True, False], ids=["sqlite-driver", "sqlalchemy-core"])
def test_read_predictions_gives_one_row_per_prediction(
    url: str, tmp_path: Path, fast_sqlite: bool
) -> None:
    settings = Settings(workspace=tmp_path, store_url=url)
    log = PredictionLog(url, fast_sqlite=fast_sqlite)
    log.start()
    old = datetime.now(UTC) - timedelta(hours=2)
    log.submit(entry("old", 1, when=old))
    log.submit(entry("new", 2))
    log.close()
    table = read_predictions(settings)
    assert list(table["request_id"]) == ["old", "new", "new"]
    assert list(table["record_index"]) == [0, 0, 1]
    assert {"bill_length_mm", "island", "sex", "proba_Adelie", "proba_Gentoo"} <= set(table.columns)
    assert table["proba_Chinstrap"].tolist() == [0.3, 0.3, 0.3]
    assert table["low_confidence"].dtype == bool and table["low_confidence"].all()
    assert abs(table["created_at"].iloc[0] - old) < timedelta(seconds=1)
    recent = read_predictions(settings, since=datetime.now(UTC) - timedelta(hours=1))
    assert list(recent["request_id"]) == ["new", "new"]
    assert list(read_predictions(settings, last=1)["record_index"]) == [1]


def test_reading_a_log_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path / "ws")
    table = read_predictions(settings)
    assert table.empty and "confidence" in table.columns
    assert not (tmp_path / "ws").exists()


def test_write_failures_are_counted_not_raised(url: str) -> None:
    log = PredictionLog(url, retries=1)
    log.start()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE predictions")
    engine.dispose()
    log.submit(entry("lost", 3))
    assert log.flush(10)
    status = log.status()
    log.close()
    assert status["failed"] == 3 and status["written"] == 0
    assert "no such table" in status["error"]


def test_records_are_logged_as_sent_when_the_body_can_be_cut(url: str) -> None:
    body = (
        b'[{"bill_length_mm": 40, "island": "Dream"},\n {"island": null, "bill_length_mm": 41.5}]'
    )
    sent = entry("cut", 2)
    columns = {"bill_length_mm": [40.0, 41.5], "island": ["Dream", None]}
    log = PredictionLog(url)
    log.start()
    log.submit(dataclasses.replace(sent, request_id="as-sent", inputs=columns, received=body))
    log.submit(dataclasses.replace(sent, request_id="rendered", inputs=columns))
    log.close()
    with sqlite3.connect(sa.engine.make_url(url).database) as conn:
        stored = conn.execute("SELECT request_id, input FROM predictions ORDER BY id").fetchall()
    assert stored == [  # the text itself: as sent (spacing, order, 40 not 40.0), or rendered
        ("as-sent", '{"bill_length_mm": 40, "island": "Dream"}'),
        ("as-sent", '{"island": null, "bill_length_mm": 41.5}'),
        ("rendered", '{"bill_length_mm":40.0,"island":"Dream"}'),
        ("rendered", '{"bill_length_mm":41.5,"island":null}'),
    ]
