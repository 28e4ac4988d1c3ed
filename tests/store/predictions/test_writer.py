"""The log's writer: every row once and in order, both writers alike, failures reported."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops_kit.store.predictions import writer as writer_module
from mlops_kit.store.predictions.writer import PredictionLog
from tests.store.predictions.entries import (
    entry,
    submit_awkward_values,
)

WRITERS = pytest.mark.parametrize(
    "fast_sqlite", [True, False], ids=["sqlite-driver", "sqlalchemy-core"]
)


def stored(url: str, columns: str = "request_id, record_index") -> list[tuple]:
    """The log's rows as the database holds them, in insertion order."""
    with sqlite3.connect(sa.engine.make_url(url).database) as conn:
        return conn.execute(f"SELECT {columns} FROM predictions ORDER BY id").fetchall()


@WRITERS
def test_every_row_is_written_once_in_submission_order(url: str, fast_sqlite: bool) -> None:
    log = PredictionLog(url, max_rows_per_write=7, fast_sqlite=fast_sqlite)
    log.start()
    sizes = [1, 5, 3, 10, 2, 8, 1, 4]
    for i, rows in enumerate(sizes):
        log.submit(entry(f"r{i}", rows))
    assert log.flush(30)
    log.close()
    assert log.status() == {"written": sum(sizes), "pending": 0, "failed": 0, "error": None}
    assert stored(url) == [(f"r{i}", j) for i, rows in enumerate(sizes) for j in range(rows)]


@WRITERS
def test_concurrent_submitters_lose_no_rows(url: str, fast_sqlite: bool) -> None:
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
    rows = stored(url)
    assert len(rows) == len(set(rows)) == expected
    for k in range(8):  # each client's requests in the order it sent them, records in order
        mine = [(r, i) for r, i in rows if r.startswith(f"t{k}-")]
        assert mine == [(f"t{k}-{j}", i) for j in range(25) for i in range(1 + (j % 4))]


def test_both_writers_store_the_same_values(tmp_path: Path) -> None:
    urls = {fast: f"sqlite:///{tmp_path / f'{fast}.db'}" for fast in (True, False)}
    for fast, url in urls.items():
        log = PredictionLog(url, fast_sqlite=fast)
        log.start()
        submit_awkward_values(log)
        log.close()
    every = "request_id, created_at, record_index, model_name, model_version, input, predicted, "
    every += (
        "confidence, probabilities, low_confidence, low_confidence_threshold, record_key, source"
    )
    assert len(stored(urls[True])) == 3008
    assert stored(urls[True], every) == stored(urls[False], every)
    thresholds = [t for (t,) in stored(urls[True], "low_confidence_threshold")]
    assert thresholds == [0.7] * 3003 + [None, None, 0.1 + 0.2, 0.7, 0.7]
    keys = stored(urls[True], "record_key, source")
    assert keys[:3] == [("Chevrolet Chevelle Malibu", "api"), (None, "api"), ('tab\t"quo%s', "api")]
    assert keys[3:8] == [
        ("tab\there", "api"),
        ("1", "api"),
        ("2", "api"),
        ("0.75", "api"),
        (None, "api"),
    ]
    assert keys[-3:] == [(None, "api"), ("7", "batch"), ("car 7", "batch")]
    first = stored(urls[True], "created_at, input, probabilities")[0]
    assert first[0] == "2026-11-28 09:30:15.000250"
    assert json.loads(first[1]) == {"island": "Dream", "bill_length_mm": 40.5, "sex": None}
    assert json.loads(first[2]) == {"Adelie": 0.5, "Chinstrap": 0.3, "Gentoo": 0.2}


def test_sqlite_log_runs_in_wal_mode(url: str) -> None:
    log = PredictionLog(url)
    log.start()
    log.submit(entry("r1", 1))
    log.close()
    with sqlite3.connect(sa.engine.make_url(url).database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_close_writes_what_is_still_queued(url: str) -> None:
    log = PredictionLog(url)
    log.start()
    for i in range(200):
        log.submit(entry(f"r{i}", 5))
    log.close()  # no flush first
    assert log.status()["written"] == 1000
    assert len(stored(url)) == 1000


def test_a_busy_database_delays_the_log_not_the_request(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "MAX_PENDING_ROWS", 10)
    log = PredictionLog(url)
    log.start()
    other = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        log.submit(entry("waits", 12))  # returns although nothing can be written now
        assert not log.flush(0.2)
        assert log.status()["pending"] == 12 and log.backlogged()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert log.flush(30)
    log.close()
    assert not log.backlogged()
    assert log.status() == {"written": 12, "pending": 0, "failed": 0, "error": None}


@WRITERS
def test_write_failures_are_reported_and_serving_goes_on(url: str, fast_sqlite: bool) -> None:
    log = PredictionLog(url, retries=2, fast_sqlite=fast_sqlite)
    log.start()
    admin = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None)
    admin.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON predictions "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    log.submit(entry("lost", 3))
    assert log.flush(10)
    status = log.status()
    assert status["failed"] == 3 and status["written"] == 0 and status["pending"] == 0
    assert "database or disk is full" in status["error"]
    admin.execute("DROP TRIGGER refuse")
    admin.close()
    log.submit(entry("kept", 2))
    assert log.flush(10)
    log.close()
    assert log.status()["written"] == 2 and log.status()["failed"] == 3
    assert stored(url) == [("kept", 0), ("kept", 1)]


def test_submitting_to_a_log_that_is_not_running_fails(url: str) -> None:
    with pytest.raises(RuntimeError, match="not running"):
        PredictionLog(url).submit(entry("r", 1))
