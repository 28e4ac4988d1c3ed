"""The writer's fast path writes the very text of ``LogEntry.rows()``, odd values included."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from mlops_kit.store import row_text
from mlops_kit.store.db import to_json
from mlops_kit.store.predictions import LogEntry

ODD_TEXT = ["tab\there", "new\nline", "back\\slash", 'quo"te', "per%cent %s", "é ção 🐧", "", None]


def odd_entry(rows: int = 300, seed: int = 0) -> LogEntry:
    """Every kind of input column a caller may hand the log, with awkward values."""
    rng = np.random.default_rng(seed)
    magnitudes = rng.choice([1e-310, 1e-7, 1e-5, 1e-4, 0.1, 1.0, 1e15, 1e16, 1e17, 1e300], rows)
    numbers = rng.normal(size=rows) * magnitudes
    numbers[::7] = np.nan
    numbers[3] = np.inf
    numbers[5] = -0.0
    classes = ["Adelie", "Chin\tstrap", 'Gen"too\\', "100%"]
    proba = rng.dirichlet([0.2] * len(classes), rows)
    proba[0] = [1.0, 0.0, 0.0, 0.0]
    best = proba.argmax(axis=1)
    return LogEntry(
        request_id="odd-1",
        created_at=datetime(2026, 11, 28, 9, 30, 15, 250, tzinfo=UTC),
        model_name="tabela\tde %s",
        model_version="7",
        inputs={
            "number": numbers,
            "whole": rng.integers(-5, 10**12, rows),
            "category": [ODD_TEXT[i % len(ODD_TEXT)] for i in range(rows)],
            "listed numbers": [None if i % 5 == 0 else float(x) for i, x in enumerate(numbers)],
            "flag": rng.random(rows) < 0.5,
            'key "%s" \\ é': ["Dream"] * rows,
        },
        predicted=[classes[b] for b in best],
        confidence=proba[np.arange(rows), best].tolist(),
        probabilities=proba,
        classes=classes,
        low_confidence=(proba.max(axis=1) < 0.7).tolist(),
    )


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


def test_an_empty_entry_makes_no_rows() -> None:
    entry = LogEntry(
        "empty", datetime.now(UTC), "m", "1", {"x": np.array([])}, [], [],
        np.zeros((0, 2)), ["a", "b"], [],
    )  # fmt: skip
    assert list(row_text.copy_tuples(entry)) == [] and list(row_text.sqlite_tuples(entry)) == []
