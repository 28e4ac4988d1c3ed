"""A served request's rows: one per record, each carrying the threshold the API flagged it with."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from mlops_kit.store.predictions.entry import LogEntry
from tests.store.predictions.entries import CLASSES, column_entry, entry


def test_each_row_carries_the_requests_threshold() -> None:
    rows = column_entry("api").rows()
    assert [row["record_index"] for row in rows] == [0, 1, 2]
    assert [row["low_confidence"] for row in rows] == [True, False, False]
    assert [row["low_confidence_threshold"] for row in rows] == [0.7, 0.7, 0.7]
    assert rows[1]["input"] == {"island": None, "bill_length_mm": None, "sex": "male"}


def thresholds(made: LogEntry) -> set[float | None]:
    """The thresholds an entry's rows carry."""
    return {row["low_confidence_threshold"] for row in made.rows()}


def test_an_entry_from_records_takes_the_threshold_by_keyword() -> None:
    assert thresholds(entry("r", 2, threshold=0.55)) == {0.55}
    assert thresholds(entry("r", 2, threshold=None)) == {None}


def test_an_entry_made_without_a_threshold_logs_none() -> None:
    made = LogEntry(
        "r", datetime.now(UTC), "m", "1", {"x": np.array([1.0])}, ["Adelie"], [0.9],
        np.array([[0.9, 0.05, 0.05]]), CLASSES, [False],
    )  # fmt: skip
    assert made.low_confidence_threshold is None and thresholds(made) == {None}
