"""The writer's fast path writes the very text of ``LogEntry.rows()``, odd values included."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from mlops_kit.store.db import to_json
from mlops_kit.store.predictions import row_text
from mlops_kit.store.predictions.entry import LogEntry
from tests.store.predictions.entries import odd_entry


@pytest.mark.parametrize("seed", range(5))
def test_json_texts_equal_the_records_json(seed: int) -> None:
    entry = odd_entry(seed=seed)
    assert row_text.input_texts(entry) == [to_json(r) for r in entry.records()]
    assert row_text.probability_texts(entry) == [to_json(p) for p in entry.probability_records()]


def test_copy_rows_match_their_declared_types() -> None:
    entry = odd_entry(rows=40)
    rows = list(row_text.copy_tuples(entry))
    assert len(rows) == 40 and {len(r) for r in rows} == {len(row_text.COPY_TYPES)}
    assert [r[2] for r in rows] == list(range(40))
    assert rows[0][1] == datetime(2026, 11, 28, 9, 30, 15, 250, tzinfo=UTC)
    assert {r[10] for r in rows} == {0.7}  # the request's threshold, on each of its rows
    assert [r[11] for r in rows[:5]] == ["tab\there", "1", "2", "0.75", None]  # keys as text
    assert {r[12] for r in rows} == {"api"}  # the source, on each row


def test_an_empty_entry_makes_no_rows() -> None:
    entry = LogEntry(
        "empty", datetime.now(UTC), "m", "1", {"x": np.array([])}, [], [],
        np.zeros((0, 2)), ["a", "b"], [],
    )  # fmt: skip
    assert list(row_text.copy_tuples(entry)) == [] and list(row_text.sqlite_tuples(entry)) == []
