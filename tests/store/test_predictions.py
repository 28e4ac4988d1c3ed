"""The prediction log: every row once and in order, failures reported, read back as a table."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from mlops_kit.config import Settings
from mlops_kit.store import predictions as predictions_module
from mlops_kit.store.predictions import LogEntry, PredictionLog, read_predictions
from tests.store.test_row_text import odd_entry

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
WRITERS = pytest.mark.parametrize(
    "fast_sqlite", [True, False], ids=["sqlite-driver", "sqlalchemy-core"]
)


def entry(request_id: str, rows: int, when: datetime | None = None) -> LogEntry:
    """A served request of `rows` records, built from records as a caller other than the API."""
    records = [{"bill_length_mm": 40.0 + i, "island": "Dream", "sex": None} for i in range(rows)]
    return LogEntry.from_records(
        request_id=request_id,
        created_at=when or datetime.now(UTC),
        model_name="penguins-classifier",
        model_version="3",
        records=records,
        predicted=["Adelie"] * rows,
        confidence=[0.6] * rows,
        probabilities=[[0.6, 0.3, 0.1]] * rows,
        classes=CLASSES,
        low_confidence=[True] * rows,
    )


def column_entry(request_id: str) -> LogEntry:
    """A request as the API hands it over: numbers as float arrays (NaN: absent), text as lists."""
    return LogEntry(
        request_id=request_id,
        created_at=datetime(2026, 11, 28, 9, 30, 15, 250, tzinfo=UTC),
        model_name="penguins-classifier",
        model_version="3",
        inputs={
            "island": ["Dream", None, 'Bis"coe é'],
            "bill_length_mm": np.array([40.5, np.nan, 1e300]),
            "sex": [None, "male", "female"],
        },
        predicted=["Adelie", "Gentoo", "Chinstrap"],
        confidence=[0.5, 0.9, 0.7],
        probabilities=np.array([[0.5, 0.3, 0.2], [0.05, 0.05, 0.9], [0.2, 0.7, 0.1]]),
        classes=CLASSES,
        low_confidence=[True, False, False],
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite log in a folder that does not exist yet."""
    return f"sqlite:///{tmp_path / 'logs' / 'predictions.db'}"


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
        log.submit(column_entry("same"))
        log.submit(odd_entry(rows=3000))  # tabs, backslashes, %, quotes, NaN, inf, 1e-310…
        log.close()
    every = "request_id, created_at, record_index, model_name, model_version, input, predicted, "
    every += "confidence, probabilities, low_confidence"
    assert len(stored(urls[True])) == 3003
    assert stored(urls[True], every) == stored(urls[False], every)
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
    monkeypatch.setattr(predictions_module, "MAX_PENDING_ROWS", 10)
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


@WRITERS
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
    assert list(table["bill_length_mm"]) == [40.0, 40.0, 41.0]
    assert table["proba_Chinstrap"].tolist() == [0.3, 0.3, 0.3]
    assert table["low_confidence"].dtype == bool and table["low_confidence"].all()
    assert abs(table["created_at"].iloc[0] - old) < timedelta(seconds=1)
    assert str(table["created_at"].dt.tz) == "UTC"


def test_read_predictions_by_time_window_and_newest(url: str, tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path, store_url=url)
    now = datetime.now(UTC)
    log = PredictionLog(url)
    log.start()
    for hours, name in ((3, "a"), (2, "b"), (1, "c")):
        log.submit(entry(name, 2, when=now - timedelta(hours=hours)))
    log.close()

    def requests(**kwargs: object) -> list[tuple[str, int]]:
        table = read_predictions(settings, **kwargs)  # type: ignore[arg-type]
        return list(zip(table["request_id"], table["record_index"], strict=True))

    assert requests(since=now - timedelta(hours=2, minutes=30)) == [
        ("b", 0), ("b", 1), ("c", 0), ("c", 1),
    ]  # fmt: skip
    naive = (now - timedelta(hours=1, minutes=30)).replace(tzinfo=None)  # read as UTC
    assert requests(since=naive) == [("c", 0), ("c", 1)]
    assert requests(last=3) == [("b", 1), ("c", 0), ("c", 1)]  # the newest, oldest first
    assert requests(since=now - timedelta(hours=2, minutes=30), last=10) == [
        ("b", 0), ("b", 1), ("c", 0), ("c", 1),
    ]  # fmt: skip
    assert requests(since=now + timedelta(minutes=1)) == []


def test_absent_fields_read_back_as_missing(url: str, tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path, store_url=url)
    log = PredictionLog(url)
    log.start()
    log.submit(column_entry("api"))
    log.submit(
        LogEntry.from_records(
            "records", datetime.now(UTC), "m", "1",
            [{"island": "Dream", "bill_length_mm": float("nan")}], ["Adelie"], [0.9],
            [[0.9, 0.05, 0.05]], CLASSES, [False],
        )
    )  # fmt: skip
    log.close()
    table = read_predictions(settings)
    assert list(table.columns[-6:]) == ["island", "bill_length_mm", "sex"] + [
        f"proba_{c}" for c in CLASSES
    ]
    assert table["island"].isna().tolist() == [False, True, False, False]
    assert table["island"].dropna().tolist() == ["Dream", 'Bis"coe é', "Dream"]
    assert table["bill_length_mm"].isna().tolist() == [False, True, False, True]
    assert table["bill_length_mm"].iloc[2] == 1e300
    assert table["sex"].isna().tolist() == [True, False, False, True]


def test_input_fields_named_like_log_columns_keep_both(url: str, tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path, store_url=url)
    log = PredictionLog(url)
    log.start()
    log.submit(
        LogEntry.from_records(
            "r", datetime.now(UTC), "m", "1", [{"confidence": 3.0}], ["Adelie"], [0.9],
            [[0.9, 0.05, 0.05]], CLASSES, [False],
        )
    )  # fmt: skip
    log.close()
    table = read_predictions(settings)
    assert table["confidence"].tolist() == [0.9] and table["input_confidence"].tolist() == [3.0]


def test_reading_a_log_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path / "ws")
    table = read_predictions(settings)
    assert table.empty and "confidence" in table.columns
    assert not (tmp_path / "ws").exists()


def test_reading_a_store_without_the_log_table_gives_an_empty_table(
    url: str, tmp_path: Path
) -> None:
    path = Path(sa.engine.make_url(url).database)
    path.parent.mkdir()
    sqlite3.connect(path).close()  # the store exists, nothing was ever logged
    table = read_predictions(Settings(workspace=tmp_path, store_url=url))
    assert table.empty and "request_id" in table.columns


def test_a_time_window_is_read_through_the_index(url: str, tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path, store_url=url)
    log = PredictionLog(url)
    log.start()
    log.submit(entry("r", 3))
    log.close()
    statements: list[tuple[str, tuple]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("SELECT") and "predictions" in statement:
            statements.append((statement, parameters))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", keep)
    try:
        read_predictions(settings, since=datetime.now(UTC) - timedelta(minutes=5))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", keep)
    (statement, parameters), *_ = [s for s in statements if "created_at >=" in s[0]]
    with sqlite3.connect(sa.engine.make_url(url).database) as conn:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    steps = " / ".join(step[-1] for step in plan)
    assert "USING INDEX ix_predictions_created_at" in steps, steps  # not a scan of the whole log
