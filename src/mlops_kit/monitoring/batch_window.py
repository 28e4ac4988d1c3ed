"""Batch traffic as monitoring reads it: the scored outputs, streamed, cut as the log is cut.

The same ``Window`` as ``monitor.read_store`` builds from the prediction log: exact totals, the
recent window's rows (every k-th when long), and at most ``MAX_SEGMENTS`` segments of at most
``SAMPLE_ROWS`` rows each. The rows come from the batches' Parquet outputs where they lie
(``store.batches``), a chunk at a time, so memory does not grow with the size of a batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from datetime import datetime

import numpy as np
import pandas as pd

from mlops_kit.config import Settings
from mlops_kit.monitoring.segments import (
    RECENT_ROWS,
    SAMPLE_ROWS,
    Part,
    Window,
    _floor,
    bounded_step,
    every,
    frame_totals,
    segment_step,
)
from mlops_kit.store import batches
from mlops_kit.store.predictions.window import Totals


def combined(parts: list[Totals]) -> Totals:
    """The totals of several stretches, as if summed at once."""
    versions: Counter[str] = Counter()
    for part in parts:
        versions.update(part.versions)
    firsts = [p.first_id for p in parts if p.first_id is not None]
    lasts = [p.last_id for p in parts if p.last_id is not None]
    starts = [p.start for p in parts if p.start is not None]
    return Totals(
        predictions=sum(p.predictions for p in parts),
        confidence_sum=sum(p.confidence_sum for p in parts),
        low_confidence=sum(p.low_confidence for p in parts),
        first_id=min(firsts, default=None),
        last_id=max(lasts, default=None),
        start=min(starts, default=None),
        versions=dict(versions),
    )


class _Stretch:
    """A stretch being read: its totals so far and every k-th of its rows."""

    def __init__(self, size: int, cap: int) -> None:
        self.step = every(size, cap)
        self.seen = 0
        self.totals: list[Totals] = []
        self.samples: list[pd.DataFrame] = []
        self.classes: Counter[str] = Counter()

    def add(self, rows: pd.DataFrame) -> None:
        keep = (np.arange(self.seen, self.seen + len(rows)) % self.step) == 0
        self.seen += len(rows)
        self.totals.append(frame_totals(rows))
        self.samples.append(rows[keep])
        self.classes.update(rows["predicted"].astype(str))

    def rows(self) -> pd.DataFrame:
        return pd.concat(self.samples, ignore_index=True) if self.samples else pd.DataFrame()


def read_batches(
    settings: Settings, since: datetime | None, last: int | None, recent: int, segment: int | str
) -> Window:
    """The window (``since``, ``last``) of the batches' outputs, cut as ``read_store`` cuts the log."""
    found = batches.newest(batches.runs(settings.store, since), last)
    count = sum(run.rows - start for run, start in found)
    recent = min(recent or count, count)
    step = segment_step(segment)
    keys: list[Callable[[np.ndarray], np.ndarray]] = []  # each batch's rows -> their segment
    sizes: Counter[Hashable] = Counter()
    if isinstance(step, int):  # every `size` rows of the window, across batches
        size = bounded_step(step, count, None, None)
        keys = [lambda at, size=size: at // size for _ in found]
        sizes.update({k: min(size, count - k * size) for k in range(-(-count // size))})
    else:  # per time window: a batch's rows all carry the time it was scored
        times = [run.created_at for run, _ in found]
        width = bounded_step(step, count, min(times), max(times)) if times else step
        for run, start in found:
            window = _floor(run.created_at, width)
            keys.append(lambda at, window=window: np.full(len(at), window, dtype=object))
            sizes[window] += run.rows - start
    stretches = {key: _Stretch(n, SAMPLE_ROWS) for key, n in sizes.items()}
    newest = _Stretch(recent, RECENT_ROWS)
    position = 0
    for (run, start), key_of in zip(found, keys, strict=True):
        for rows in batches.run_rows(run, start):
            at = np.arange(position, position + len(rows))
            for key in pd.unique(key_of(at)):
                stretches[key].add(rows[key_of(at) == key])
            if position + len(rows) > count - recent:
                newest.add(rows.iloc[max(count - recent - position, 0) :])
            position += len(rows)
    parts = [Part(combined(s.totals), s.rows()) for _, s in sorted(stretches.items()) if s.seen]
    thresholds = sorted({run.low_confidence_threshold for run, _ in found})
    return Window(
        count, combined(newest.totals), newest.rows(), dict(newest.classes), parts, thresholds
    )
