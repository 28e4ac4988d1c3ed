"""Training stage: build candidate scikit-learn Pipelines, fit them, evaluate them on the held-out season.

``candidate_log`` logs a trained candidate to MLflow; this module needs scikit-learn only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_kit import evaluation
from mlops_kit.data import DatasetSpec, PreparedData


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
