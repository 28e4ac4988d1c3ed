"""A classifier's answer: the predicted class, its confidence and one probability per class."""

from __future__ import annotations

import numpy as np
import pandas as pd

PREDICTED = "predicted"
CONFIDENCE = "confidence"
PROBA_PREFIX = "proba_"


def predict_with_confidence(pipeline: object, records: pd.DataFrame) -> pd.DataFrame:
    """For each record: the predicted class, its confidence and one probability column per class."""
    proba = np.asarray(pipeline.predict_proba(records))  # type: ignore[attr-defined]
    classes = [str(c) for c in pipeline.classes_]  # type: ignore[attr-defined]
    best = proba.argmax(axis=1)
    out = pd.DataFrame({PREDICTED: np.asarray(classes, dtype=object)[best]})
    out[CONFIDENCE] = proba[np.arange(len(proba)), best]
    for i, name in enumerate(classes):
        out[PROBA_PREFIX + name] = proba[:, i]
    return out
