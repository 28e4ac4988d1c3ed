"""Entries a caller may hand the prediction log: as the API builds them, from records, odd ones."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from mlops_kit.store.predictions.entry import LogEntry

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
ODD_TEXT = ["tab\there", "new\nline", "back\\slash", 'quo"te', "per%cent %s", "é ção 🐧", "", None]


def entry(
    request_id: str,
    rows: int,
    when: datetime | None = None,
    threshold: float | None = 0.7,
    keys: list[object] | None = None,
    source: str = "api",
) -> LogEntry:
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
        low_confidence_threshold=threshold,
        record_keys=keys,
        source=source,
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
        low_confidence_threshold=0.7,
        record_keys=["Chevrolet Chevelle Malibu", None, 'tab\t"quo%s'],
    )


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
        low_confidence_threshold=0.7,
        # keys as a file gives them: text of every kind, whole numbers (numpy's too), missing
        record_keys=[
            [ODD_TEXT[i % len(ODD_TEXT)], i, np.int64(i), float(i) / 4, None][i % 5]
            for i in range(rows)
        ],
    )


WHEN = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # a fixed time: both writers' rows alike


def submit_awkward_values(log) -> None:  # noqa: ANN001 - a started PredictionLog
    """What the equality tests write through each writer: every kind of value a row can hold."""
    log.submit(column_entry("same"))
    log.submit(odd_entry(rows=3000))  # tabs, backslashes, %, quotes, NaN, inf, 1e-310…
    log.submit(entry("unset", 2, when=WHEN, threshold=None))  # a caller that gives none
    log.submit(entry("inexact", 1, when=WHEN, threshold=0.1 + 0.2))
    log.submit(entry("batch", 2, when=WHEN, keys=[7, "car 7"], source="batch"))  # a batch run's
