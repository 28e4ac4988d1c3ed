"""Score: validated records -> the model's DataFrame -> class probabilities -> the answers.

The frame is what the served pyfunc model gives its scikit-learn pipeline
(``model.ClassifierWithConfidence.predict``): the inputs in model order, numbers as float64, other
columns as objects with NaN where a value is missing. The probabilities come from the pipeline
itself, or from the champion's accelerator when it has one (built only where it reproduces the
pipeline; see ``accelerator.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sklearn

from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.inputs import Parsed, model_frame
from mlops_kit.scoring.loader import Champion


@dataclass(frozen=True)
class Scores:
    """What the model says about each record of one request."""

    created_at: datetime
    probabilities: np.ndarray  # records x classes
    predicted: list[str]
    confidence: np.ndarray
    low_confidence: np.ndarray  # confidence below the review threshold


def predict_proba(champion: Champion, frame: pd.DataFrame) -> np.ndarray:
    """Class probabilities for each row: through the accelerator if there is one, else the model."""
    # The inputs are validated already: scikit-learn's own checks would repeat the work. Absurd
    # magnitudes (1.79e308 standardised) overflow to infinity inside the model: its probabilities
    # are then not finite and score() refuses the records, as batch scoring rejects the rows
    # (with the check on, the accelerator's classifier raised instead: an error 500).
    with (
        np.errstate(all="ignore"),
        sklearn.config_context(assume_finite=True, skip_parameter_validation=True),
    ):
        if champion.accelerator is not None:
            return np.asarray(champion.accelerator.predict_proba(frame))
        return np.asarray(champion.pipeline.predict_proba(frame))


def score(champion: Champion, parsed: Parsed, threshold: float) -> Scores:
    """Score validated records with one champion: best class, its confidence, every probability."""
    created_at = datetime.now(UTC)
    proba = predict_proba(champion, model_frame(parsed.columns, champion.inputs))
    finite = np.isfinite(proba).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)[:10].tolist()
        raise BadRequest(
            422,
            f"record(s) {bad}: the model cannot score these values (its probabilities are not "
            "finite); check the units and magnitudes of the measurements",
        )
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(parsed.rows), best]
    predicted = np.asarray(champion.classes, dtype=object)[best].tolist()
    return Scores(created_at, proba, predicted, confidence, confidence < threshold)
