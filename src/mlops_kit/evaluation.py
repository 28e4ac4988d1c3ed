"""Evaluation: one way to score a model on labelled records, for training, the gate and retraining."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from mlops_kit.confidence import CONFIDENCE, PREDICTED, predict_with_confidence
from mlops_kit.data import PreparedData

METRICS = ("accuracy", "f1_macro", "mean_confidence", "low_confidence_share")
GATE_METRICS = ("accuracy", "f1_macro")  # the ones where higher is better


class MissingInputsError(ValueError):
    """The evaluation data lacks columns the model takes as input."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        super().__init__(
            f"the evaluation data lacks the model's input column(s): {', '.join(columns)}; "
            "evaluate it on a table that has them, or train a model of its own for this table "
            "(another model name: MLOPS_KIT_MODEL_NAME)"
        )


def model_inputs(model: object, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """The columns the model takes, from X; refused when X lacks any of them."""
    if hasattr(model, "metadata"):  # a loaded MLflow pyfunc: its signature names the inputs
        schema = model.metadata.get_input_schema()
        names = schema.input_names() if schema else list(X.columns)
    else:  # a fitted scikit-learn pipeline remembers the columns it was fitted on
        names = list(getattr(model, "feature_names_in_", X.columns))
    missing = [c for c in names if c not in X.columns]
    # The model would impute an absent column, but scoring it on a table without its inputs
    # measures it on noise: such a score could not be compared with anything.
    if missing:
        raise MissingInputsError(missing)
    return X[names]


def evaluate(
    model: object,
    X: pd.DataFrame,  # noqa: N803
    y: pd.Series,
    low_confidence: float,
) -> dict[str, float]:
    """Accuracy, macro F1, mean confidence and the share below `low_confidence`; NaN when empty."""
    inputs = model_inputs(model, X)
    if len(y) == 0:
        return dict.fromkeys(METRICS, float("nan"))
    return scores(answers(model, inputs), y, low_confidence)


def answers(model: object, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """The model's answer for each row of X: class, confidence, every class probability."""
    inputs = model_inputs(model, X)
    if hasattr(model, "metadata"):  # the kit's pyfunc answers with class, confidence, probabilities
        return model.predict(inputs)
    # a fitted scikit-learn pipeline: the same answer through the same function
    return predict_with_confidence(model, inputs)


def scores(out: pd.DataFrame, y: pd.Series, low_confidence: float) -> dict[str, float]:
    """The metrics of a model's answers (``answers``) against the true classes."""
    true, predicted, _ = label_codes(y, out[PREDICTED])
    return {
        "accuracy": float(accuracy_score(true, predicted)),
        "f1_macro": float(f1_score(true, predicted, average="macro")),
        "mean_confidence": float(out[CONFIDENCE].mean()),
        "low_confidence_share": float((out[CONFIDENCE] < low_confidence).mean()),
    }


def label_codes(y_true: pd.Series, y_pred: pd.Series) -> tuple[np.ndarray, np.ndarray, list]:
    """Both label columns as codes into their classes, sorted; and those classes.

    scikit-learn's metrics sort text labels on every call (20 s of a 1M-row training); on the
    codes they give the same values, the classes in the same (sorted) order.
    """
    classes = sorted(
        pd.unique(pd.concat([pd.Series(y_true), pd.Series(y_pred)], ignore_index=True))
    )
    codes = [pd.Categorical(y, categories=classes).codes.astype(np.intp) for y in (y_true, y_pred)]
    return codes[0], codes[1], classes


def evaluate_logged(
    model_uri: str, prepared: PreparedData, low_confidence: float
) -> dict[str, float]:
    """Load a logged model (run or registry URI) and evaluate it on the prepared evaluation data."""
    import mlflow  # here, not at the top: scoring a pipeline in a notebook needs no MLflow

    # MLflow's check of the model's requirements against the installed packages (~0.25 s, once
    # a process) is skipped: where a model is served, the kit's environment check does it
    model = mlflow.pyfunc.load_model(model_uri, suppress_warnings=True)
    return evaluate(model, prepared.X_eval, prepared.y_eval, low_confidence)
