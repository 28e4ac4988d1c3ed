"""The prediction log on a real PostgreSQL: every accepted row written once, through a restart."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops_kit.config import Settings
from mlops_kit.postgres import restart_cluster, start_cluster, stop_cluster
from mlops_kit.store.predictions import writer as writer_module
from mlops_kit.store.predictions.window import read_predictions
from mlops_kit.store.predictions.writer import PredictionLog
from tests.store.postgres import Postgres
from tests.store.predictions.entries import (
    CLASSES,
    column_entry,
    entry,
    submit_awkward_values,
)

EVERY = (
    "request_id, created_at, record_index, model_name, model_version, input::text, predicted, "
    "confidence, probabilities::text, low_confidence, low_confidence_threshold, record_key, source"
)


def stored(url: str, columns: str = "request_id, record_index") -> list[tuple]:
    """The log's rows as the database holds them, in insertion order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.exec_driver_sql(f"SELECT {columns} FROM predictions ORDER BY id")
            ]
    finally:
        engine.dispose()


def test_round_trip_every_accepted_row_reads_back_equal(pg_url: str, tmp_path: Path) -> None:
    log = PredictionLog(pg_url, max_rows_per_write=7)
    assert log.copy  # psycopg's COPY, the PostgreSQL writer
    log.start()
    sizes = [1, 5, 3, 10, 2]
    old = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)  # before column_entry's fixed 09:30:15, and now
    for i, rows in enumerate(sizes):
        log.submit(entry(f"r{i}", rows, when=old if i == 0 else None))
    log.submit(column_entry("api"))
    log.close()
    accepted = sum(sizes) + 3
    assert log.status() == {"written": accepted, "pending": 0, "failed": 0, "error": None}

    table = read_predictions(Settings(workspace=tmp_path, store_url=pg_url))
    assert len(table) == accepted
    assert list(zip(table["request_id"], table["record_index"], strict=True)) == [
        (f"r{i}", j) for i, rows in enumerate(sizes) for j in range(rows)
    ] + [("api", 0), ("api", 1), ("api", 2)]
    api = table[table["request_id"] == "api"]
    assert api["island"].tolist()[0] == "Dream" and api["island"].tolist()[2] == 'Bis"coe é'
    assert api["island"].isna().tolist() == [False, True, False]
    assert api["bill_length_mm"].isna().tolist() == [False, True, False]
    assert api["bill_length_mm"].iloc[2] == 1e300
    assert api[[f"proba_{c}" for c in CLASSES]].values.tolist() == [
        [0.5, 0.3, 0.2], [0.05, 0.05, 0.9], [0.2, 0.7, 0.1],
    ]  # fmt: skip
    assert api["low_confidence"].tolist() == [True, False, False]
    assert api["created_at"].iloc[0] == datetime(2026, 11, 28, 9, 30, 15, 250, tzinfo=UTC)
    # the database chooses the window
    recent = read_predictions(
        Settings(workspace=tmp_path, store_url=pg_url), since=old + timedelta(minutes=1)
    )
    assert "r0" not in set(recent["request_id"]) and len(recent) == accepted - 1
    assert read_predictions(Settings(workspace=tmp_path, store_url=pg_url), last=2)[
        "record_index"
    ].tolist() == [1, 2]


def test_copy_and_insert_store_the_same_values(postgres: Postgres, pg_url: str) -> None:
    texts = {}
    for copy in (True, False):
        log = PredictionLog(pg_url, copy=copy)
        log.start()
        submit_awkward_values(log)
        log.close()
        texts[copy] = stored(pg_url, EVERY)
        sa_engine = sa.create_engine(pg_url)
        with sa_engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM predictions")
        sa_engine.dispose()
    assert len(texts[True]) == 3008 and texts[True] == texts[False]
    first = texts[True][0]
    assert first[5] == '{"island":"Dream","bill_length_mm":40.5,"sex":null}'
    assert first[8] == '{"Adelie":0.5,"Chinstrap":0.3,"Gentoo":0.2}'
    assert [row[10] for row in texts[True]] == [0.7] * 3003 + [None, None, 0.1 + 0.2, 0.7, 0.7]
    assert [row[11:] for row in texts[True]][:4] == [
        ("Chevrolet Chevelle Malibu", "api"), (None, "api"), ('tab\t"quo%s', "api"),
        ("tab\there", "api"),
    ]  # fmt: skip
    assert [row[11:] for row in texts[True]][-2:] == [("7", "batch"), ("car 7", "batch")]


def test_the_writer_keeps_accepted_rows_through_a_restart(
    postgres: Postgres,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(writer_module, "MAX_PENDING_ROWS", 20)
    log = PredictionLog(pg_url)
    log.start()
    log.submit(entry("before", 4))
    assert log.flush(30)

    stop_cluster(postgres.cluster)  # as `pg_ctl stop -m fast` while the API serves
    try:
        for i in range(6):
            log.submit(entry(f"down{i}", 4))  # accepted: the API answered 200 for these
        assert not log.flush(1.5)
        status = log.status()
        assert status["pending"] == 24 and status["failed"] == 0
        assert "unreachable" in status["error"]
        assert log.backlogged()  # the API now answers 503 with Retry-After
    finally:
        start_cluster(postgres.cluster)

    log.submit(entry("after", 2))
    assert log.flush(60)
    log.close()
    assert log.status() == {"written": 30, "pending": 0, "failed": 0, "error": None}
    names = ["before"] + [f"down{i}" for i in range(6)]
    expected = [(name, j) for name in names for j in range(4)] + [("after", 0), ("after", 1)]
    assert stored(pg_url) == expected  # each once, in the order accepted
    assert caplog.text.count("database unreachable") == 1  # one warning as the outage began
    assert caplog.text.count("database back") == 1  # ... and one as it ended


def test_a_shutdown_that_times_out_gives_up_the_kept_rows(
    postgres: Postgres, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = PredictionLog(pg_url)
    log.start()
    stop_cluster(postgres.cluster)
    try:
        log.submit(entry("down", 3))
        assert not log.flush(0.5)  # kept, waiting for the server
        log.close(timeout=0.5)  # the API stops while the server is still down
        assert log.flush(10)  # the writer stops waiting: the rows are given up, counted
    finally:
        start_cluster(postgres.cluster)
    status = log.status()
    assert status["written"] == 0 and status["failed"] == 3 and status["pending"] == 0
    assert "3 rows still unwritten at shutdown" in caplog.text
    assert "3 rows not written" in caplog.text


@pytest.mark.slow  # the stop-then-start test above covers the path in `make test-fast`
def test_a_restart_under_load_loses_and_repeats_no_row(
    postgres: Postgres, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = PredictionLog(pg_url, max_rows_per_write=50)
    log.start()
    stop = threading.Event()
    sent: list[str] = []

    def traffic() -> None:  # a steady stream of accepted requests, as the API hands them over
        while not stop.is_set():
            sent.append(f"q{len(sent)}")
            log.submit(entry(sent[-1], 3))
            time.sleep(0.002)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        time.sleep(0.3)
        restart_cluster(postgres.cluster)  # pg_ctl stop -m fast, then start
        time.sleep(0.3)
    finally:
        stop.set()
        sender.join()
    assert log.flush(60)
    log.close()
    assert log.status()["failed"] == 0 and log.status()["written"] == 3 * len(sent)
    assert stored(pg_url) == [(name, j) for name in sent for j in range(3)]
    assert "database unreachable" in caplog.text  # the restart did cut the writer off
