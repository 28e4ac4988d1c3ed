"""The log read back: a table of predictions (``read_predictions``), or a window read by SQL.

``read_predictions`` gives the log as a table, by time window (``since``) or the newest N
(``last``); ``LogWindow`` lets the database count and sum a window too long to hold in memory,
and hands back rows only for a bounded sample or chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlops_kit.confidence import PROBA_PREFIX
from mlops_kit.config import Settings
from mlops_kit.store.db import add_missing_columns, exists, make_engine
from mlops_kit.store.predictions.entry import API, BASE_COLUMNS, predictions


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _aware(stored: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives it back without its zone)."""
    return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


def _open(url: str) -> Engine | None:
    """An engine on the store when it holds the log (given the columns an older log lacks)."""
    if not exists(url):
        return None
    engine = make_engine(url)
    if not sa.inspect(engine).has_table(predictions.name):
        engine.dispose()
        return None
    add_missing_columns(engine, predictions)
    return engine


def from_source(source: str | None) -> list[Any]:
    """The SQL condition for predictions from one source ('api', 'batch'); None: every source.

    Rows logged before the log kept a source have none (NULL): they all came from the API.
    """
    if source is None:
        return []
    c = predictions.c
    if source == API:
        return [sa.or_(c.source == API, c.source.is_(None))]
    return [c.source == source]


def _frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Stored rows as the log's table: base columns, one per input field, ``proba_<class>``."""
    rows = sorted(rows, key=lambda row: row["id"])  # in log order
    base = pd.DataFrame([{k: r[k] for k in BASE_COLUMNS} for r in rows], columns=BASE_COLUMNS)
    base["created_at"] = pd.to_datetime(base["created_at"], utc=True)
    base["low_confidence"] = base["low_confidence"].astype(bool)
    base["low_confidence_threshold"] = base["low_confidence_threshold"].astype(float)  # None: NaN
    inputs = pd.DataFrame([r["input"] for r in rows], index=base.index)
    inputs.columns = [f"input_{c}" if c in BASE_COLUMNS else c for c in inputs.columns]
    proba = pd.DataFrame([r["probabilities"] for r in rows], index=base.index)
    proba.columns = [PROBA_PREFIX + str(c) for c in proba.columns]
    return pd.concat([base, inputs, proba], axis=1)


def read_predictions(
    settings: Settings,
    since: datetime | None = None,
    last: int | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """The prediction log as a table: a row per prediction, inputs and ``proba_<class>`` as columns.

    Columns: id, request_id, created_at (UTC), record_index, model_name, model_version, predicted,
    confidence, low_confidence, low_confidence_threshold (the API's; NaN in rows logged before
    it was kept), record_key (the record's key, or None), source ('api', 'batch'; None in rows
    logged before it was kept), then one column per input field, then one per class probability.
    ``since`` keeps predictions made at or after that time; ``last`` keeps only the newest N;
    ``source`` keeps one source's predictions (None: all of them).
    The database does the choosing: only the rows returned are read. For a window too long to
    hold in memory, read it through ``LogWindow``.
    """
    query = sa.select(predictions).where(*from_source(source))
    if since is not None:  # on the created_at index
        query = query.where(predictions.c.created_at >= _utc(since))
    if last is not None:
        query = query.order_by(predictions.c.id.desc()).limit(last)
    engine = _open(settings.store)
    if engine is None:
        return pd.DataFrame(columns=BASE_COLUMNS)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
    finally:
        engine.dispose()
    # sorted in Python, as ORDER BY id would lead SQLite past the created_at index
    return _frame(rows)


# --- a window of the log, read by SQL: counts and sums in the database, rows a bounded few ---


@dataclass(frozen=True)
class Span:
    """A stretch of a window: ids in [first_id, end_id) and times in [start, end); None is open."""

    first_id: int | None = None
    end_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None

    def conditions(self) -> list[Any]:
        """The stretch as SQL conditions on the predictions table."""
        c, out = predictions.c, []
        if self.first_id is not None:
            out.append(c.id >= self.first_id)
        if self.end_id is not None:
            out.append(c.id < self.end_id)
        if self.start is not None:
            out.append(c.created_at >= _utc(self.start))
        if self.end is not None:
            out.append(c.created_at < _utc(self.end))
        return out


WHOLE = Span()


@dataclass
class Totals:
    """Exact figures of a stretch of the log, summed by the database."""

    predictions: int
    confidence_sum: float
    low_confidence: int
    first_id: int | None
    last_id: int | None
    start: datetime | None
    versions: dict[str, int]  # predictions per model version


class LogWindow:
    """A window of the prediction log (made since a time, the newest N, from a source) read by SQL.

    Counts, sums and boundaries come from the database; rows come back only for a bounded
    sample (``rows(every=k)``) or chunk by chunk (``chunks``), so the memory a reader needs does
    not grow with the log. Use it as a context manager (it holds one engine).
    """

    def __init__(
        self,
        settings: Settings,
        since: datetime | None = None,
        last: int | None = None,
        source: str | None = None,
    ) -> None:
        self.url = settings.store
        self.since = since
        self.last = last
        self.source = source
        self._engine: Engine | None = None
        self._window: list[Any] = []

    def __enter__(self) -> LogWindow:
        self._engine = _open(self.url)
        if self._engine is None:
            return self
        self._window.extend(from_source(self.source))
        if self.since is not None:
            self._window.append(predictions.c.created_at >= _utc(self.since))
        if self.last is not None:  # the id where the newest `last` predictions begin
            first = self._scalar(
                sa.select(predictions.c.id)
                .where(*self._window)
                .order_by(predictions.c.id.desc())
                .limit(1)
                .offset(max(self.last - 1, 0))
            )
            if first is not None:
                self._window.append(predictions.c.id >= first)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def has_table(self, name: str) -> bool:
        """True when the store's database has that table."""
        return self._engine is not None and sa.inspect(self._engine).has_table(name)

    def _scalar(self, query: Any) -> Any:
        with self._engine.connect() as conn:  # type: ignore[union-attr]
            return conn.execute(query).scalar()

    def _where(self, span: Span) -> list[Any]:
        return [*self._window, *span.conditions()]

    def count(self, span: Span = WHOLE) -> int:
        """Predictions in the window (or a stretch of it)."""
        if self._engine is None:
            return 0
        query = sa.select(sa.func.count()).select_from(predictions).where(*self._where(span))
        return int(self._scalar(query) or 0)

    def ids_every(self, size: int, span: Span = WHOLE) -> list[int]:
        """The id of every `size`-th prediction, from the first: where runs of `size` begin."""
        if self._engine is None:
            return []
        number = sa.func.row_number().over(order_by=predictions.c.id).label("number")
        ranked = sa.select(predictions.c.id, number).where(*self._where(span)).subquery()
        query = sa.select(ranked.c.id).where((ranked.c.number - 1) % size == 0)
        with self._engine.connect() as conn:
            return sorted(int(i) for i in conn.execute(query).scalars())

    def id_from_end(self, n: int, span: Span = WHOLE) -> int | None:
        """The id where the newest `n` predictions of the window begin."""
        if self._engine is None or n < 1:
            return None
        return self._scalar(
            sa.select(predictions.c.id)
            .where(*self._where(span))
            .order_by(predictions.c.id.desc())
            .limit(1)
            .offset(n - 1)
        )

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The first and last prediction times of the window (UTC), None when it is empty."""
        if self._engine is None:
            return None
        c = predictions.c
        with self._engine.connect() as conn:
            low, high = conn.execute(
                sa.select(sa.func.min(c.created_at), sa.func.max(c.created_at)).where(*self._window)
            ).one()
        if low is None:
            return None
        return _aware(low), _aware(high)

    def totals(self, span: Span = WHOLE) -> Totals:
        """Count, confidence sum, low-confidence count, first/last id, start and versions."""
        c = predictions.c
        query = (
            sa.select(
                c.model_version,
                sa.func.count(),
                sa.func.sum(c.confidence),
                sa.func.sum(sa.cast(c.low_confidence, sa.Integer)),
                sa.func.min(c.id),
                sa.func.max(c.id),
                sa.func.min(c.created_at),
            )
            .where(*self._where(span))
            .group_by(c.model_version)
        )
        groups = []
        if self._engine is not None:
            with self._engine.connect() as conn:
                groups = conn.execute(query).all()
        starts = [g[6] for g in groups]
        return Totals(
            predictions=sum(int(g[1]) for g in groups),
            confidence_sum=sum(float(g[2] or 0) for g in groups),
            low_confidence=sum(int(g[3] or 0) for g in groups),
            first_id=min((int(g[4]) for g in groups), default=None),
            last_id=max((int(g[5]) for g in groups), default=None),
            start=_aware(min(_aware(s) for s in starts)) if starts else None,
            versions={str(g[0]): int(g[1]) for g in groups},
        )

    def class_counts(self, span: Span = WHOLE) -> dict[str, int]:
        """Predictions per predicted class."""
        if self._engine is None:
            return {}
        c = predictions.c
        query = sa.select(c.predicted, sa.func.count()).where(*self._where(span))
        with self._engine.connect() as conn:
            return {str(k): int(n) for k, n in conn.execute(query.group_by(c.predicted))}

    def thresholds(self, span: Span = WHOLE) -> list[float]:
        """The low-confidence thresholds the API flagged the stretch with, distinct, ascending."""
        if self._engine is None:
            return []
        c = predictions.c
        query = (
            sa.select(c.low_confidence_threshold)
            .distinct()
            .where(*self._where(span), c.low_confidence_threshold.is_not(None))
            .order_by(c.low_confidence_threshold)
        )
        with self._engine.connect() as conn:
            return [float(t) for t in conn.execute(query).scalars()]

    def rows(self, span: Span = WHOLE, every: int = 1) -> pd.DataFrame:
        """The stretch's predictions as ``read_predictions`` gives them; every k-th one if asked."""
        if self._engine is None:
            return pd.DataFrame(columns=BASE_COLUMNS)
        query = sa.select(predictions).where(*self._where(span))
        if every > 1:  # a systematic sample: the 1st, (k+1)th, (2k+1)th ... prediction
            number = sa.func.row_number().over(order_by=predictions.c.id).label("number")
            ranked = sa.select(predictions.c.id, number).where(*self._where(span)).subquery()
            chosen = sa.select(ranked.c.id).where((ranked.c.number - 1) % every == 0)
            query = sa.select(predictions).where(predictions.c.id.in_(chosen))
        with self._engine.connect() as conn:
            return _frame(conn.execute(query).mappings().all())

    def chunks(self, *conditions: Any, size: int = 10_000) -> Iterator[pd.DataFrame]:
        """The window's predictions that meet `conditions`, in log order, `size` rows at a time."""
        if self._engine is None:
            return
        after = None
        while True:
            query = sa.select(predictions).where(*self._window, *conditions)
            if after is not None:
                query = query.where(predictions.c.id > after)
            query = query.order_by(predictions.c.id).limit(size)
            with self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
            if not rows:
                return
            yield _frame(rows)
            after = rows[-1]["id"]
