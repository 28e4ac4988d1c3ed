"""The prediction log as monitoring reads it: the recent window, and the history in segments.

A log of millions of predictions is read by SQL (``store.predictions.LogWindow``): counts, sums
and segment boundaries come from the database, and rows only for the recent window and for at
most ``MAX_SEGMENTS`` segments (a long window gets wider ones), each tested on at most
``SAMPLE_ROWS`` of its predictions (every k-th). Time and memory do not grow with the log
(bench_scale.py: 1M logged predictions in about 5 s and 275 MB, against 65 s for 100k before).
A table given instead of the store (a slice of the log) is cut the same way by pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from mlops_kit.store.predictions.window import LogWindow, Span, Totals

MAX_SEGMENTS = 50  # the history has at most this many segments: a long window gets wider ones
SAMPLE_ROWS = 2_000  # drift is tested on at most this many predictions of a segment (every k-th)
RECENT_ROWS = 20_000  # ... and of the recent window


def segment_step(segment: int | str) -> int | pd.Timedelta:
    """A segment as asked: a number of predictions, or a time window such as '1h' or '30min'."""
    if isinstance(segment, int) or str(segment).isdigit():
        size = int(segment)
        if size < 1:
            raise ValueError("a segment needs at least one prediction")
        return size
    try:
        width = pd.to_timedelta(str(segment))
    except ValueError as exc:
        raise ValueError(
            f"segment must be a number of predictions or a time window like '1h', not '{segment}'"
        ) from exc
    if width <= pd.Timedelta(0):
        raise ValueError("a time window must be longer than zero")
    return width


def bounded_step(
    step: int | pd.Timedelta, count: int, first: datetime | None, last: datetime | None
) -> int | pd.Timedelta:
    """The step widened just enough that the window has at most ``MAX_SEGMENTS`` segments."""
    if isinstance(step, int):
        return max(step, math.ceil(count / MAX_SEGMENTS))
    if first is None or last is None:
        return step
    windows = (_floor(last, step) - _floor(first, step)) // step + 1
    return step * math.ceil(windows / MAX_SEGMENTS)


def _floor(moment: datetime, width: pd.Timedelta) -> pd.Timestamp:
    """The start of the time window a moment falls in (windows counted from the Unix epoch)."""
    return pd.Timestamp(moment).tz_convert(UTC).floor(width)


def segment_ids(predictions: pd.DataFrame, segment: int | str) -> pd.Series:
    """Number the log's rows by segment: every `segment` predictions, or per time window ('1h').

    A window with more than ``MAX_SEGMENTS`` segments gets wider ones, so that the history's
    length does not grow with the log.
    """
    step = segment_step(segment)
    if isinstance(step, int):
        size = bounded_step(step, len(predictions), None, None)
        return pd.Series(np.arange(len(predictions)) // size + 1, index=predictions.index)
    times = pd.to_datetime(predictions["created_at"], utc=True)
    width = bounded_step(step, len(times), times.min(), times.max()) if len(times) else step
    windows = times.dt.floor(width)
    codes = {w: i + 1 for i, w in enumerate(sorted(windows.unique()))}
    return windows.map(codes).astype(int)


@dataclass
class Part:
    """A stretch of the log as monitoring reads it: exact totals, and the rows drift is tested on."""

    totals: Totals
    rows: pd.DataFrame  # all its predictions, or every k-th one when it is long


@dataclass
class Window:
    """The monitored window as read: its size, the recent window (totals, rows, classes), segments."""

    count: int
    totals: Totals  # of the recent window, exact
    current: pd.DataFrame  # the recent window's rows drift is tested on
    produced: dict[str, int]  # predictions per class in the recent window
    parts: list[Part]
    thresholds: list[float]  # the API's low-confidence thresholds in the recent window


def every(count: int, cap: int) -> int:
    """The k of "every k-th prediction" that keeps at most `cap` of `count`."""
    return max(1, math.ceil(count / cap))


def frame_totals(frame: pd.DataFrame) -> Totals:
    """A table's totals, as the store's SQL sums them."""
    empty = frame.empty
    return Totals(
        predictions=len(frame),
        confidence_sum=float(frame["confidence"].sum()) if not empty else 0.0,
        low_confidence=int(frame["low_confidence"].astype(bool).sum()) if not empty else 0,
        first_id=None if empty or "id" not in frame else int(frame["id"].min()),
        last_id=None if empty or "id" not in frame else int(frame["id"].max()),
        start=None if empty or "created_at" not in frame else frame["created_at"].min(),
        versions=frame.get("model_version", pd.Series(dtype=str))
        .astype(str)
        .value_counts()
        .to_dict(),
    )


def frame_parts(log: pd.DataFrame, segment: int | str) -> list[Part]:
    """A given table's segments (pandas)."""
    ids = segment_ids(log, segment)
    return [
        Part(frame_totals(part), part.iloc[:: every(len(part), SAMPLE_ROWS)])
        for _, part in log.groupby(ids, sort=True)
    ]


def _spans(window: LogWindow, step: int | pd.Timedelta, count: int) -> list[Span]:
    """The window's segment boundaries: every `step` ids, or one span per time window."""
    if isinstance(step, int):
        firsts = window.ids_every(bounded_step(step, count, None, None))
        return [Span(first, end) for first, end in zip(firsts, [*firsts[1:], None], strict=True)]
    times = window.time_range()
    spans = []
    if times is not None:
        width = bounded_step(step, count, *times)
        start = _floor(times[0], width)
        while start <= times[1]:
            spans.append(Span(start=start.to_pydatetime(), end=(start + width).to_pydatetime()))
            start += width
    return spans


def store_parts(window: LogWindow, segment: int | str, count: int) -> list[Part]:
    """The log window's segments: boundaries and totals by SQL, a bounded sample of rows each."""
    parts = []
    for span in _spans(window, segment_step(segment), count):
        totals = window.totals(span)
        if totals.predictions:  # an empty time window is no segment
            rows = window.rows(span, every=every(totals.predictions, SAMPLE_ROWS))
            parts.append(Part(totals, rows))
    return parts
