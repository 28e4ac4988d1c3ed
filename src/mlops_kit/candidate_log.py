"""Log a trained candidate as a nested MLflow run with its pyfunc model, signature and plots."""

from __future__ import annotations

import logging
from importlib.metadata import version

import cloudpickle
import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from mlops_kit import confidence, plots
from mlops_kit import model as model_module
from mlops_kit.confidence import CONFIDENCE, PREDICTED, PROBA_PREFIX
from mlops_kit.dataset import PreparedData
from mlops_kit.model import ClassifierWithConfidence
from mlops_kit.tracking import invocation_tags, log_data_inputs
from mlops_kit.train import CandidateResult

# The modules the logged pyfunc runs: pickled by value, so loading it needs mlflow and
# scikit-learn, not this kit.
BY_VALUE = (model_module, confidence)


def signature_for(prepared: PreparedData, classes: list[str]) -> ModelSignature:
    """Input: the raw feature columns (optional where data can be missing); output: class, confidence, probabilities."""
    inputs = [ColSpec("double", c, required=False) for c in prepared.spec.numeric]
    inputs += [ColSpec("string", c, required=False) for c in prepared.spec.categorical]
    outputs = [ColSpec("string", PREDICTED), ColSpec("double", CONFIDENCE)]
    outputs += [ColSpec("double", PROBA_PREFIX + c) for c in classes]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def input_example(prepared: PreparedData, rows: int = 2) -> pd.DataFrame:
    """A few complete raw records from the held-out season, as the API would receive them."""
    complete = prepared.X_eval.dropna()
    # A table where every held-out record misses something still gets a (partial) example.
    return (complete if len(complete) else prepared.X_eval).head(rows).reset_index(drop=True)


def input_headers(prepared: PreparedData) -> dict[str, str]:
    """The file's header of each feature that the kit renamed ({feature: header})."""
    headers = prepared.card.file_headers
    return {c: headers[c] for c in prepared.spec.features if c in headers}


def model_metadata(prepared: PreparedData) -> dict[str, object]:
    """What the API reads from the logged model: the file's headers, other columns and key."""
    card = prepared.card
    metadata: dict[str, object] = {"file_headers": input_headers(prepared)}
    metadata["other_columns"] = dict(card.other_columns)  # {kit name: header in the file}
    metadata["record_key"] = card.record_key  # a kit name among them, or None
    return metadata


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model, given explicitly (inference takes seconds)."""
    return [
        f"{pkg}=={version(pkg)}"
        for pkg in ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle")
    ]


def log_candidate(
    result: CandidateResult, prepared: PreparedData, tags: dict[str, str] | None = None
) -> CandidateResult:
    """Log one candidate as a nested MLflow run: params, metrics, data inputs, plots, model."""
    with mlflow.start_run(run_name=result.name, nested=True) as run:
        mlflow.set_tags({"candidate": result.name, "data_version": prepared.card.data_version})
        if result.note:
            mlflow.set_tag("note", result.note)
        mlflow.set_tags({**invocation_tags(), **(tags or {})})
        mlflow.log_params({"candidate": result.name, **result.params})
        mlflow.log_metrics({f"eval_{k}": v for k, v in result.metrics.items()})
        log_data_inputs(prepared)  # the tables it learned from and was scored on
        scored = result.scored
        for fig_name, fig in (
            ("confusion_matrix.png", plots.confusion_matrix(prepared.y_eval, scored[PREDICTED])),
            (
                "confidence_histogram.png",
                plots.confidence_histogram(
                    scored[CONFIDENCE], prepared.y_eval == scored[PREDICTED]
                ),
            ),
        ):
            mlflow.log_figure(fig, f"plots/{fig_name}")
        model = ClassifierWithConfidence(result.pipeline, prepared.spec.features)
        # The pipeline is our own, produced by this kit: it travels inside the pyfunc via
        # cloudpickle (MLflow's pyfunc format); mlflow warns about pickles, which we know.
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
        for module in BY_VALUE:
            cloudpickle.register_pickle_by_value(module)
        try:
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                signature=signature_for(prepared, model.classes),
                input_example=input_example(prepared),
                pip_requirements=pip_requirements(),
                # the API also accepts (and /docs shows) the headers of the user's file, and
                # accepts and ignores the file's other columns, sending the record key back
                metadata=model_metadata(prepared),
            )
        finally:
            for module in BY_VALUE:
                cloudpickle.unregister_pickle_by_value(module)
        result.run_id = run.info.run_id
        result.model_uri = info.model_uri
    return result
