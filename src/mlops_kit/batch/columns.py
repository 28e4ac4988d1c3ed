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

from mlops_kit.model import CONFIDENCE, PREDICTED, PROBA_PREFIX

LOW_CONFIDENCE = "low_confidence"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
BATCH_ID = "batch_id"
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


def scores_frame(
    proba: np.ndarray,
    classes: list[str],
    threshold: float,
    model_name: str,
    model_version: str,
    batch_id: str,
) -> pd.DataFrame:
    """The added columns for rows with these class probabilities (rows x classes)."""
    proba = np.asarray(proba, dtype=np.float64)
    rows = len(proba)
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(rows), best]
    data: dict[str, object] = {
        PREDICTED: pd.array(np.asarray(classes, dtype=object)[best], dtype="str"),
        CONFIDENCE: confidence,
    }
    for name, values in zip(proba_columns(classes), proba.T, strict=True):
        data[name] = values
    data[LOW_CONFIDENCE] = confidence < threshold
    for name, value in ((MODEL_NAME, model_name), (MODEL_VERSION, model_version)):
        data[name] = pd.array(np.full(rows, value, dtype=object), dtype="str")
    data[BATCH_ID] = pd.array(np.full(rows, batch_id, dtype=object), dtype="str")
    return pd.DataFrame(data)


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
    """Valid input rows as read, their number inputs as scored (float64), then the scores."""
    kept = chunk.reset_index(drop=True).copy()
    for column, values in numbers.items():
        kept[column] = np.asarray(values, dtype=np.float64)
    added = scores_frame(proba, classes, threshold, model_name, model_version, batch_id)
    return pd.concat([kept, added], axis=1)


def rejects_frame(chunk: pd.DataFrame, reasons: Iterable[str], batch_id: str) -> pd.DataFrame:
    """Refused input rows as read, with the reason each was refused and the batch id."""
    kept = chunk.reset_index(drop=True).copy()
    kept[REASON] = pd.array(list(reasons), dtype="str")
    kept[BATCH_ID] = pd.array([batch_id] * len(kept), dtype="str")
    return kept
