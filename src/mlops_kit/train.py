"""Training stage: candidate scikit-learn Pipelines, evaluated on the held-out season, logged to MLflow."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_kit import evaluation, plots
from mlops_kit import model as model_module
from mlops_kit.data import DatasetSpec, PreparedData
from mlops_kit.model import CONFIDENCE, PREDICTED, PROBA_PREFIX, ClassifierWithConfidence
from mlops_kit.tracking import invocation_tags, log_data_inputs


def _classifiers(seed: int) -> dict[str, Callable[[], object]]:
    return {
        "logistic_regression": lambda: LogisticRegression(C=1.0, max_iter=1000),
        "random_forest": lambda: RandomForestClassifier(
            n_estimators=100, max_depth=6, random_state=seed, n_jobs=1
        ),
        "knn": lambda: KNeighborsClassifier(n_neighbors=7),
    }


CANDIDATES = tuple(_classifiers(0))
# KNN compares each prediction with every training row: at 1M rows evaluating it took 64 s of a
# 248 s run (benchmarks/bench_scale.py); above this it learns from a seeded sample, and says so.
KNN_MAX_ROWS = 100_000
PROGRESS_ROWS = 50_000  # tables above this show what each long step is doing


def build_pipeline(
    name: str, spec: DatasetSpec, seed: int = 42, params: dict[str, object] | None = None
) -> Pipeline:
    """A full Pipeline (imputation, scaling, one-hot encoding, classifier) for one candidate.

    `params` are the classifier's hyper-parameters where they differ from the kit's defaults
    (what `tune` found).
    """
    classifiers = _classifiers(seed)
    if name not in classifiers:
        raise ValueError(f"unknown candidate '{name}'; choose from: {', '.join(classifiers)}")
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    preprocess = ColumnTransformer(
        [("numeric", numeric, spec.numeric), ("categorical", categorical, spec.categorical)]
    )
    classifier = classifiers[name]().set_params(**(params or {}))
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


@dataclass
class CandidateResult:
    """One trained candidate: its pipeline, metrics on the held-out data, and where MLflow has it."""

    name: str
    pipeline: Pipeline
    metrics: dict[str, float]
    scored: pd.DataFrame  # its answers on the held-out data, which the metrics and plots come from
    run_id: str | None = None
    model_uri: str | None = None
    params: dict[str, object] = field(default_factory=dict)
    note: str = ""  # what was done differently for this candidate (e.g. a sample), and why


def check_candidates(names: list[str] | None) -> None:
    """Refuse unknown candidate names up front, naming the choices."""
    unknown = [c for c in names or [] if c not in CANDIDATES]
    if unknown:
        raise ValueError(
            f"unknown candidate(s): {', '.join(unknown)}; choose from: {', '.join(CANDIDATES)}"
        )


def train_candidates(
    prepared: PreparedData,
    candidates: list[str] | None = None,
    seed: int = 42,
    *,
    low_confidence: float,
    params: dict[str, dict[str, object]] | None = None,
) -> list[CandidateResult]:
    """Fit each candidate on the training split and evaluate it on the held-out split.

    `params` gives a candidate's hyper-parameters by name (the kit's defaults where absent).
    """
    check_candidates(candidates)
    results = []
    for name in candidates or list(CANDIDATES):
        pipeline = build_pipeline(name, prepared.spec, seed, (params or {}).get(name))
        X, y, note = prepared.X_train, prepared.y_train, ""
        if name == "knn" and len(X) > KNN_MAX_ROWS:  # it compares every prediction with every row
            X = X.sample(KNN_MAX_ROWS, random_state=seed)
            y = y.loc[X.index]
            note = f"knn learnt from a seeded sample of {KNN_MAX_ROWS:,} of {len(prepared.X_train):,} rows"
        neighbours = pipeline.get_params().get("classifier__n_neighbors")
        if neighbours and neighbours > len(X):  # a tiny table: ask fewer neighbours
            pipeline.set_params(classifier__n_neighbors=len(X))
        progress(f"{name}: fitting on {len(X):,} rows" + (f" ({note})" if note else ""), len(X))
        pipeline.fit(X, y)
        progress(f"{name}: evaluating on {len(prepared.X_eval):,} rows", len(X))
        scored = evaluation.answers(pipeline, prepared.X_eval)
        metrics = evaluation.scores(scored, prepared.y_eval, low_confidence)
        result = CandidateResult(
            name, pipeline, metrics, scored, params=classifier_params(pipeline), note=note
        )
        results.append(result)
    return results


def progress(message: str, rows: int) -> None:
    """Say what a long step is doing (on stderr, only for tables of more than PROGRESS_ROWS rows)."""
    if rows > PROGRESS_ROWS:
        print(f"[train] {message}", file=sys.stderr, flush=True)


def classifier_params(pipeline: Pipeline) -> dict[str, object]:
    """The classifier's own hyper-parameters, as simple values for MLflow."""
    params = pipeline.named_steps["classifier"].get_params()
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool)) or v is None}


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
        # The wrapper class is pickled by value, so loading needs mlflow and sklearn, not this kit.
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
        cloudpickle.register_pickle_by_value(model_module)
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
            cloudpickle.unregister_pickle_by_value(model_module)
        result.run_id = run.info.run_id
        result.model_uri = info.model_uri
    return result


def best_of(results: list[CandidateResult], metric: str) -> CandidateResult:
    """The candidate with the highest value of the metric (ties: the first listed)."""
    scores = [r.metrics[metric] for r in results]
    return results[int(np.argmax(scores))]


def candidates_table(results: list[CandidateResult]) -> pd.DataFrame:
    """The candidates side by side, one row each, best first."""
    rows = [
        {"candidate": r.name, **{k: round(v, 4) for k, v in r.metrics.items()}} for r in results
    ]
    return (
        pd.DataFrame(rows)
        .sort_values(["f1_macro", "accuracy"], ascending=False, kind="stable")
        .reset_index(drop=True)
    )
