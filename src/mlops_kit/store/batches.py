"""Batch traffic in the loop: each scored batch recorded in the store, its output read where it lies.

Why not the prediction log: writing every scored row into the log costs more than scoring it.
``benchmarks/bench_batch.py --cases script local log`` measures both in one run; 2M penguin rows on
2 cores: the local engine scored them in 3.2 s, writing them into the log (SQLite, the writer's
fast path) took 12.0 s more (167k rows/s), which would make a batch 0.40x the plain pandas script
instead of 1.12x. So a batch writes its Parquet output as always, and the store keeps one row per
batch (``batch_runs``: when, which model, where its output is, how many rows); monitoring and
capture read the outputs column by column, a bounded number of rows at a time, in the shape of
the prediction log (``source`` "batch", the batch id as the request id, the row's position in the
output as its record index).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from mlops_kit.confidence import CONFIDENCE, PREDICTED, PROBA_PREFIX
from mlops_kit.store.db import create_tables, exists, make_engine, metadata

# the columns a scored file adds after the input's (batch/columns.py writes them)
LOW_CONFIDENCE = "low_confidence"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
BATCH_ID = "batch_id"
READ_ROWS = 100_000  # rows read from an output at a time

batch_runs = sa.Table(
    "batch_runs",
    metadata,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),  # UTC
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("source", sa.String(2000), nullable=False),  # the input file or folder
    sa.Column("output", sa.String(2000), nullable=False),  # the scored Parquet file or folder
    sa.Column("rows", sa.BigInteger, nullable=False),  # rows scored (rejects are not in it)
    sa.Column("rejected", sa.BigInteger, nullable=False),
    sa.Column("low_confidence_threshold", sa.Float, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),  # {model input: its column in the output}
    sa.Column("run_id", sa.String(64), nullable=True),  # the batch's MLflow run
)


@dataclass(frozen=True)
class BatchRun:
    """One scored batch as the store keeps it."""

    batch_id: str
    created_at: datetime
    model_name: str
    model_version: str
    source: str
    output: str
    rows: int
    rejected: int
    low_confidence_threshold: float
    inputs: dict[str, str]
    run_id: str | None = None


def record(url: str, run: BatchRun) -> None:
    """Keep a finished batch in the store (its output is complete: written, then renamed)."""
    engine = make_engine(url)
    try:
        create_tables(engine)
        with engine.begin() as conn:
            conn.execute(batch_runs.insert(), [run.__dict__])
    finally:
        engine.dispose()


def runs(url: str, since: datetime | None = None) -> list[BatchRun]:
    """The batches recorded (made at or after `since`), oldest first."""
    if not exists(url):
        return []
    engine = make_engine(url)
    try:
        if not sa.inspect(engine).has_table(batch_runs.name):
            return []
        query = sa.select(batch_runs).order_by(batch_runs.c.created_at, batch_runs.c.batch_id)
        if since is not None:
            moment = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
            query = query.where(batch_runs.c.created_at >= moment)
        with engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
    finally:
        engine.dispose()
    for row in rows:
        stamp = row["created_at"]
        row["created_at"] = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
    return [BatchRun(**row) for row in rows]


def newest(found: list[BatchRun], last: int | None) -> list[tuple[BatchRun, int]]:
    """The batches holding the newest `last` rows, each with the row it starts from (0: all)."""
    if last is None:
        return [(run, 0) for run in found]
    chosen, left = [], last
    for run in reversed(found):
        if left <= 0:
            break
        chosen.append((run, max(run.rows - left, 0)))
        left -= run.rows
    return chosen[::-1]


def _file(run: BatchRun) -> pq.ParquetDataset:
    path = Path(run.output)
    if not path.exists():
        raise FileNotFoundError(
            f"batch {run.batch_id}: its output {path} is gone; monitoring and capture read the "
            "outputs where the batch wrote them (move them back, or score the table again)"
        )
    return pq.ParquetDataset(path)


def log_rows(run: BatchRun, table: pa.Table, positions: int | np.ndarray) -> pd.DataFrame:
    """Rows of a scored file in the prediction log's shape (``read_predictions``'s columns).

    `positions`: each row's place in the output (or where the rows begin): its id and record index.
    """
    rows = table.num_rows
    if isinstance(positions, int):
        positions = np.arange(positions, positions + rows, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "id": positions,
            "request_id": run.batch_id,
            "created_at": pd.Timestamp(run.created_at),
            "record_index": positions,
            "model_name": table.column(MODEL_NAME).to_numpy(zero_copy_only=False),
            "model_version": table.column(MODEL_VERSION).to_numpy(zero_copy_only=False),
            PREDICTED: table.column(PREDICTED).to_numpy(zero_copy_only=False),
            CONFIDENCE: table.column(CONFIDENCE).to_numpy(),
            LOW_CONFIDENCE: table.column(LOW_CONFIDENCE).to_numpy(zero_copy_only=False),
            "low_confidence_threshold": run.low_confidence_threshold,
        }
    )
    for name, column in run.inputs.items():
        frame[name] = table.column(column).to_pandas().to_numpy()
    for name in table.column_names:
        if name.startswith(PROBA_PREFIX):
            frame[name] = table.column(name).to_numpy()
    return frame


def columns_read(run: BatchRun, schema: pa.Schema) -> list[str]:
    """The output columns the loop needs: the model inputs, the answer, its probabilities."""
    answer = [PREDICTED, CONFIDENCE, LOW_CONFIDENCE, MODEL_NAME, MODEL_VERSION]
    probabilities = [n for n in schema.names if n.startswith(PROBA_PREFIX)]
    return list(dict.fromkeys([*run.inputs.values(), *answer, *probabilities]))


def run_rows(
    run: BatchRun, start: int = 0, low_only: bool = False, threshold: float | None = None
) -> Iterator[pd.DataFrame]:
    """One batch's rows from `start` on, in the log's shape, READ_ROWS at a time.

    ``low_only``: only the rows flagged low-confidence (or, with `threshold`, below it).
    """
    dataset = _file(run)
    wanted = columns_read(run, dataset.schema)
    position = 0
    for fragment in dataset.fragments:
        for batch in fragment.to_batches(columns=wanted, batch_size=READ_ROWS):
            first, position = position, position + batch.num_rows
            if position <= start:
                continue
            table = pa.Table.from_batches([batch]).slice(max(start - first, 0))
            first = max(first, start)
            if not low_only:
                yield log_rows(run, table, first)
                continue
            flag = (
                table.column(LOW_CONFIDENCE)
                if threshold is None
                else pc.less(table.column(CONFIDENCE), threshold)
            )
            keep = np.flatnonzero(flag.to_numpy(zero_copy_only=False))
            if len(keep):
                yield log_rows(run, table.take(keep), first + keep)


def read_rows(
    url: str,
    since: datetime | None = None,
    last: int | None = None,
    low_only: bool = False,
    threshold: float | None = None,
) -> Iterator[pd.DataFrame]:
    """The window's batch rows (made since a time, the newest N) in the log's shape, oldest first."""
    for run, start in newest(runs(url, since), last):
        yield from run_rows(run, start, low_only, threshold)
