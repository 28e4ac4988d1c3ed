"""The output contract of a batch, shared by every engine.

A scored file holds every input column as read (identifiers included; the model's number inputs
as the float64 values that were scored), then ``predicted`` (str), ``confidence`` (float64),
``proba_<class>`` per class (float64), ``low_confidence`` (bool), ``model_name`` and
``model_version`` (str) and ``batch_id`` (str). A rejects file holds the input columns as read,
``reason`` and ``batch_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_kit.confidence import CONFIDENCE, PREDICTED, PROBA_PREFIX
from mlops_kit.store.batches import (  # the loop reads the outputs by these names too
    BATCH_ID,
    LOW_CONFIDENCE,
    MODEL_NAME,
    MODEL_VERSION,
)

REASON = "reason"


class OutputClash(ValueError):
    """The input table already has a column the output adds."""


def proba_columns(classes: Iterable[str]) -> list[str]:
    """One probability column per class, in the model's class order."""
    return [PROBA_PREFIX + str(c) for c in classes]


def added_columns(classes: Iterable[str]) -> list[str]:
    """The columns a scored file adds after the input's, in order."""
    return [
        PREDICTED,
        CONFIDENCE,
        *proba_columns(classes),
        LOW_CONFIDENCE,
        MODEL_NAME,
        MODEL_VERSION,
        BATCH_ID,
    ]


def check_no_clash(columns: Iterable[str], classes: Iterable[str]) -> None:
    """Refuse an input whose columns would be overwritten by the output's."""
    taken = set(added_columns(classes)) | {REASON}
    clash = [c for c in columns if c in taken]
    if clash:
        raise OutputClash(
            f"the input already has the column(s) {', '.join(map(repr, clash))}, which the scored "
            "output adds; rename or drop them (is this a file that was scored already?)"
        )


def scored_schema(inputs: pa.Schema, numbers: Iterable[str], classes: list[str]) -> pa.Schema:
    """The schema of a scored file: the input's (number inputs as float64), then the scores."""
    numbers = set(numbers)
    inputs = inputs.remove_metadata()  # pandas' metadata would read the numbers back as text
    kept = [pa.field(f.name, pa.float64()) if f.name in numbers else f for f in inputs]
    added = [pa.field(PREDICTED, pa.string()), pa.field(CONFIDENCE, pa.float64())]
    added += [pa.field(name, pa.float64()) for name in proba_columns(classes)]
    added += [pa.field(LOW_CONFIDENCE, pa.bool_())]
    added += [pa.field(name, pa.string()) for name in (MODEL_NAME, MODEL_VERSION, BATCH_ID)]
    return pa.schema(kept + added)


def rejects_schema(inputs: pa.Schema) -> pa.Schema:
    """The schema of a rejects file: the input's as read, then the reason and the batch id."""
    kept = list(inputs.remove_metadata())
    return pa.schema([*kept, pa.field(REASON, pa.string()), pa.field(BATCH_ID, pa.string())])


def scores_table(
    proba: np.ndarray,
    classes: list[str],
    threshold: float,
    model_name: str,
    model_version: str,
    batch_id: str,
) -> pa.Table:
    """The added columns for rows with these class probabilities (rows x classes)."""
    proba = np.asarray(proba, dtype=np.float64).reshape(-1, len(classes))
    rows = len(proba)
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(rows), best]
    arrays = [
        pa.DictionaryArray.from_arrays(pa.array(best, pa.int32()), pa.array(classes)).cast(
            pa.string()
        ),
        pa.array(confidence),
        *(pa.array(np.ascontiguousarray(values)) for values in proba.T),
        pa.array(confidence < threshold),
        *(
            pa.repeat(pa.scalar(v, pa.string()), rows)
            for v in (model_name, model_version, batch_id)
        ),
    ]
    return pa.Table.from_arrays(arrays, names=added_columns(classes))


def scored_table(
    chunk: pa.Table,
    numbers: Mapping[str, np.ndarray],
    proba: np.ndarray,
    classes: list[str],
    threshold: float,
    model_name: str,
    model_version: str,
    batch_id: str,
) -> pa.Table:
    """Valid input rows as read, their number inputs as scored (float64), then the scores."""
    for column, values in numbers.items():
        position = chunk.schema.get_field_index(column)
        chunk = chunk.set_column(position, column, pa.array(np.asarray(values, np.float64)))
    added = scores_table(proba, classes, threshold, model_name, model_version, batch_id)
    for name, column in zip(added.column_names, added.columns, strict=True):
        chunk = chunk.append_column(name, column)
    return chunk


def scored_frame(
    chunk: pd.DataFrame,
    numbers: Mapping[str, np.ndarray],
    proba: np.ndarray,
    classes: list[str],
    threshold: float,
    model_name: str,
    model_version: str,
    batch_id: str,
) -> pd.DataFrame:
    """``scored_table`` for a pandas chunk (an engine that works in pandas, e.g. Spark's)."""
    table = pa.Table.from_pandas(chunk, preserve_index=False).replace_schema_metadata(None)
    args = (numbers, proba, classes, threshold, model_name, model_version, batch_id)
    return scored_table(table, *args).to_pandas()


def rejects_table(chunk: pa.Table, reasons: Iterable[str], batch_id: str) -> pa.Table:
    """Refused input rows as read, with the reason each was refused and the batch id."""
    chunk = chunk.append_column(REASON, pa.array(list(reasons), pa.string()))
    return chunk.append_column(BATCH_ID, pa.repeat(pa.scalar(batch_id, pa.string()), len(chunk)))
