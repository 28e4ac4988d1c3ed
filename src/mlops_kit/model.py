"""The served model: a scikit-learn Pipeline wrapped so it returns class, confidence and probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from mlops_kit.confidence import predict_with_confidence


class ClassifierWithConfidence(PythonModel):
    """MLflow pyfunc model whose predict returns class, confidence and per-class probabilities."""

    def __init__(self, pipeline: object, features: list[str]) -> None:
        self.pipeline = pipeline
        self.features = list(features)

    @property
    def classes(self) -> list[str]:
        """The classes the model can predict, in probability-column order."""
        return [str(c) for c in self.pipeline.classes_]  # type: ignore[attr-defined]

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """Predict from raw records (a DataFrame with the feature columns)."""
        # Every input column is optional in the signature: an absent one is missing data,
        # which the pipeline imputes, not an error.
        frame = model_input.reindex(columns=self.features)
        # JSON null arrives as None, which scikit-learn's imputers do not count as missing in
        # text columns; NaN is what the pipeline saw in training.
        frame = frame.astype(object).where(frame.notna(), np.nan).infer_objects()
        return predict_with_confidence(self.pipeline, frame)
