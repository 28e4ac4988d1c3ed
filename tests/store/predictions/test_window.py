"""The log read back: a table per window, chosen by the database, absent values missing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops_kit.config import Settings
from mlops_kit.store.predictions.entry import LogEntry
from mlops_kit.store.predictions.window import LogWindow, Span, read_predictions
from mlops_kit.store.predictions.writer import PredictionLog
from tests.store.predictions.entries import CLASSES, column_entry, entry


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


def test_a_window_names_the_thresholds_the_api_flagged_with(url: str, tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path, store_url=url)
    now = datetime.now(UTC)
    log = PredictionLog(url)
    log.start()
    log.submit(entry("unknown", 3, when=now - timedelta(hours=3), threshold=None))
    log.submit(entry("a", 2, when=now - timedelta(hours=2), threshold=0.7))
    log.submit(entry("b", 2, when=now - timedelta(hours=1), threshold=0.55))
    log.submit(entry("c", 2, when=now, threshold=0.7))
    log.close()
    statements: list[str] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement)

    with LogWindow(settings) as window:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", keep)
        try:
            assert window.thresholds() == [0.55, 0.7]  # distinct, ascending, none missing
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", keep)
        assert window.thresholds(Span(end=now - timedelta(minutes=90))) == [0.7]
        assert window.thresholds(Span(end=now - timedelta(minutes=150))) == []
    assert any("SELECT DISTINCT" in s for s in statements)  # the database picks them out
    with LogWindow(settings, last=2) as window:
        assert window.thresholds() == [0.7]
    with LogWindow(Settings(workspace=tmp_path / "nothing-yet")) as window:
        assert window.thresholds() == []
    table = read_predictions(settings)
    assert table["low_confidence_threshold"].isna().tolist() == [True] * 3 + [False] * 6
    assert table["low_confidence_threshold"].dropna().tolist() == [0.7, 0.7, 0.55, 0.55, 0.7, 0.7]


def test_a_window_reads_one_source_or_all(url: str, tmp_path: Path) -> None:
    """API and batch predictions share the log; a reader may take one source or both."""
    settings = Settings(workspace=tmp_path, store_url=url)
    log = PredictionLog(url)
    log.start()
    log.submit(entry("served", 2, keys=["car 1", None]))
    log.submit(entry("nightly", 3, keys=["car 2", "car 3", "car 4"], source="batch"))
    log.close()
    table = read_predictions(settings)
    assert table["source"].tolist() == ["api"] * 2 + ["batch"] * 3
    assert table["record_key"].isna().tolist() == [False, True, False, False, False]
    batch = read_predictions(settings, source="batch")
    assert batch["record_key"].tolist() == ["car 2", "car 3", "car 4"]
    assert read_predictions(settings, source="api", last=1)["request_id"].tolist() == ["served"]
    counts = {}
    for source in (None, "api", "batch"):
        with LogWindow(settings, source=source) as window:
            counts[source] = (window.count(), window.totals().predictions, len(window.rows()))
            assert sum(len(c) for c in window.chunks(size=2)) == counts[source][0]
    assert counts == {None: (5, 5, 5), "api": (2, 2, 2), "batch": (3, 3, 3)}
