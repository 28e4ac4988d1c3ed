"""Capture: low-confidence predictions become a versioned review set.

*"Dados com baixos índices de segurança no resultado são captados e destinados então para compor
uma nova base de dados."* A capture takes every low-confidence prediction of the log that no earlier
review set holds, so a case is never lost and never captured twice. The database chooses them, in
one query: the window, the rule (the API's own flag, or confidence below a threshold) and "not yet
captured". Review sets and their cases are kept in the store's database (``store/reviews.py``);
the version of a review set is the content hash of its cases. Labelling them is ``labels.py``.
Capturing holds the workspace lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import sqlalchemy as sa

from mlops_kit import tracking
from mlops_kit.confidence import PROBA_PREFIX
from mlops_kit.config import Settings
from mlops_kit.store import batches, reviews
from mlops_kit.store.lock import holds_workspace_lock
from mlops_kit.store.predictions.entry import BASE_COLUMNS
from mlops_kit.store.predictions.entry import predictions as log_table
from mlops_kit.store.predictions.window import LogWindow

ID_COLUMNS = ["case_id", "prediction_id", "request_id", "record_index", "created_at"]
ANSWER_COLUMNS = ["model_version", "predicted", "confidence"]
CHUNK_ROWS = 10_000  # low-confidence predictions read from the store at a time


def review_dir(settings: Settings) -> Path:
    """Where the files for reviewers are written (git-ignored workspace)."""
    return settings.workspace / "review"


def case_ids(predictions: pd.DataFrame) -> pd.Series:
    """A prediction's case id: its request id and position in the request (stable across logs)."""
    return predictions["request_id"].astype(str) + "#" + predictions["record_index"].astype(str)


@dataclass
class ReviewSet:
    """Captured low-confidence cases waiting for (or carrying) a human's label."""

    version: str | None
    created_at: str
    cases: pd.DataFrame
    features: list[str]
    classes: list[str]
    threshold: float | None
    folder: Path | None = None  # where its files for reviewers go; None for an empty set
    manifest: dict[str, object] = field(default_factory=dict)
    store: str | None = None  # the store's URL

    def __len__(self) -> int:
        return len(self.cases)

    def table(self) -> pd.DataFrame:
        """The cases as a reviewer reads them: inputs, the model's answer and its confidence."""
        out = self.cases[[*self.features, "predicted", "confidence"]].copy()
        out["confidence"] = out["confidence"].round(3)
        return out.reset_index(drop=True)


def review_sets(settings: Settings) -> list[dict[str, object]]:
    """The catalogue of review sets, oldest first (version, created_at, cases, folder)."""
    return [
        {
            "version": row["version"],
            "created_at": iso(row["created_at"]),
            "cases": int(row["cases"]),
            "folder": row["version"],
        }
        for row in reviews.list_review_sets(settings.store)
    ]


def iso(value: datetime) -> str:
    """A stored time as ISO text in UTC."""
    return reviews.utc(value).isoformat()


def uncaptured_low_confidence(
    settings: Settings,
    *,
    since: datetime | None = None,
    last: int | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """The window's low-confidence predictions that no review set holds yet, read in chunks.

    The database chooses them (the API's flag, or confidence below `threshold`, and no case of
    that request id and position in ``review_cases``): the rest of the log is never read.
    """
    log = log_table
    low = log.c.low_confidence.is_(True) if threshold is None else log.c.confidence < threshold
    case_id = log.c.request_id + "#" + sa.cast(log.c.record_index, sa.String)
    taken = sa.exists().where(reviews.review_cases.c.case_id == case_id)
    with LogWindow(settings, since=since, last=last) as window:
        conditions = [low]
        if window.has_table(reviews.review_cases.name):
            conditions.append(~taken)
        chunks = list(window.chunks(*conditions, size=CHUNK_ROWS))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=BASE_COLUMNS)


def uncaptured_batch_low_confidence(
    settings: Settings,
    *,
    since: datetime | None = None,
    last: int | None = None,
    threshold: float | None = None,
) -> pd.DataFrame:
    """The same from batch traffic: the batches' low-confidence rows no review set holds yet.

    The outputs are read where they lie, a chunk at a time; only the low-confidence rows are kept.
    A batch row's case id is its batch id and its position in the output.
    """
    taken = reviews.captured_case_ids(settings.store)
    chunks = []
    for rows in batches.read_rows(settings.store, since, last, low_only=True, threshold=threshold):
        chunks.append(rows[~case_ids(rows).isin(taken)])
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=BASE_COLUMNS)


UNCAPTURED = {"api": uncaptured_low_confidence, "batch": uncaptured_batch_low_confidence}


@holds_workspace_lock("capture")
def capture(
    settings: Settings,
    *,
    since: datetime | None = None,
    last: int | None = None,
    threshold: float | None = None,
    track: bool = True,
    source: str = "api",
) -> ReviewSet:
    """Put every low-confidence prediction that no review set holds yet into a new review set.

    Only those predictions are read from the store (chosen by SQL, in chunks), not the whole log;
    ``source="batch"``: from the outputs of batch scoring instead.
    """
    if source not in UNCAPTURED:
        raise ValueError(f"source must be one of {', '.join(UNCAPTURED)}, not '{source}'")

    def take() -> ReviewSet:
        chosen = UNCAPTURED[source](settings, since=since, last=last, threshold=threshold)
        return _save_review_set(settings, chosen, threshold)

    try:
        review = take()
    except reviews.CaseAlreadyCaptured:  # another machine's capture took some: take the rest
        review = take()
    if track and review.version is not None:
        track_review_run(
            settings,
            "capture",
            {
                "review_set": review.version,
                "model_versions": ",".join(review.manifest["model_versions"]),
            },
            {"cases": float(len(review))},
            {
                "cases.csv": review.cases.to_csv(index=False),
                "manifest.json": review.manifest,
            },
        )
    return review


def _features_of(predictions: pd.DataFrame) -> list[str]:
    return [
        c for c in predictions.columns if c not in BASE_COLUMNS and not c.startswith(PROBA_PREFIX)
    ]


def _cases(chosen: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The chosen predictions as cases: ids, the model's answer, then the inputs, in log order."""
    cases = chosen.assign(case_id=case_ids(chosen) if len(chosen) else [])
    cases = cases.drop_duplicates("case_id")  # a request sent twice under its id is one case
    cases = cases.rename(columns={"id": "prediction_id"})
    cases = cases[[*ID_COLUMNS, *ANSWER_COLUMNS, *features]].reset_index(drop=True)
    if len(cases):
        created = pd.to_datetime(cases["created_at"], utc=True)
        cases["created_at"] = created.map(lambda t: t.isoformat())
    return cases


def _save_review_set(
    settings: Settings, chosen: pd.DataFrame, threshold: float | None
) -> ReviewSet:
    """The chosen predictions as a new review set in the store (an empty one is not saved)."""
    features = _features_of(chosen)
    classes = [c[len(PROBA_PREFIX) :] for c in chosen.columns if c.startswith(PROBA_PREFIX)]
    cases = _cases(chosen, features)
    if not len(cases):
        return ReviewSet(None, "", cases, features, classes, threshold)
    version = hashlib.sha256(cases.to_csv(index=False).encode()).hexdigest()[:12]
    created_at = datetime.now(UTC).replace(microsecond=0)
    rule = "API low-confidence flag" if threshold is None else f"confidence < {threshold}"
    review = ReviewSet(
        version,
        created_at.isoformat(),
        cases,
        features,
        classes,
        threshold,
        review_dir(settings) / version,
        store=settings.store,
    )
    review.manifest = _manifest(review, rule)
    reviews.add_review_set(
        settings.store,
        {
            "version": version,
            "created_at": created_at,
            "rule": rule,
            "threshold": threshold,
            "features": features,
            "classes": classes,
            "model_versions": review.manifest["model_versions"],
        },
        _case_rows(cases, features),
    )
    return review


def _manifest(review: ReviewSet, rule: str) -> dict[str, object]:
    cases = review.cases
    return {
        "version": review.version,
        "created_at": review.created_at,
        "cases": len(cases),
        "threshold": review.threshold,
        "rule": rule,
        "features": review.features,
        "classes": review.classes,
        "model_versions": sorted(set(cases["model_version"].astype(str))),
        "prediction_ids": [int(cases["prediction_id"].min()), int(cases["prediction_id"].max())],
        "predicted": {str(k): int(v) for k, v in cases["predicted"].value_counts().items()},
    }


def _case_rows(cases: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """The cases as rows of the store's review_cases table."""
    inputs = cases[features].astype(object).where(cases[features].notna(), None)
    return [
        {
            "case_id": str(case["case_id"]),
            "position": position,
            "prediction_id": int(case["prediction_id"]),
            "request_id": str(case["request_id"]),
            "record_index": int(case["record_index"]),
            "created_at": datetime.fromisoformat(case["created_at"]),
            "model_version": str(case["model_version"]),
            "predicted": str(case["predicted"]),
            "confidence": float(case["confidence"]),
            "inputs": record,
        }
        for position, (case, record) in enumerate(
            zip(cases.to_dict("records"), inputs.to_dict("records"), strict=True)
        )
    ]


def load_review_set(settings: Settings, version: str | None = None) -> ReviewSet:
    """A review set by version or a prefix of it (default: the newest)."""
    catalogue = reviews.list_review_sets(settings.store)
    if not catalogue:
        raise ValueError(
            "no review set yet: capture low-confidence cases first (mlops-kit capture)"
        )
    versions = [str(e["version"]) for e in catalogue]
    chosen = versions[-1] if version is None else version
    matches = [e for e in catalogue if chosen and str(e["version"]).startswith(chosen)]
    if len(matches) != 1:
        raise ValueError(f"review set '{version}' not found; known: {', '.join(versions)}")
    entry = matches[0]
    features = list(entry["features"])
    cases = cases_frame(reviews.cases_of(settings.store, entry["version"]), features)
    review = ReviewSet(
        entry["version"],
        iso(entry["created_at"]),
        cases,
        features,
        list(entry["classes"]),
        entry["threshold"],
        review_dir(settings) / entry["version"],
        store=settings.store,
    )
    review.manifest = _manifest(review, entry["rule"])
    return review


def cases_frame(rows: list[dict[str, Any]], features: list[str]) -> pd.DataFrame:
    """Stored case rows as the table capture made: ids, the model's answer, then the inputs."""
    columns = [*ID_COLUMNS, *ANSWER_COLUMNS]
    base = pd.DataFrame([{c: row[c] for c in columns} for row in rows], columns=columns)
    base["created_at"] = base["created_at"].map(iso)
    inputs = pd.DataFrame([row["inputs"] for row in rows], index=base.index)
    return pd.concat([base, inputs.reindex(columns=features)], axis=1)


def track_review_run(
    settings: Settings,
    name: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    files: dict[str, str | dict[str, object]],
) -> str:
    """An MLflow run for a capture or labelling pass; `files` are logged under review/."""
    tracking.configure(settings)
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({"pipeline": name, **tags, **tracking.invocation_tags()})
        mlflow.log_metrics(metrics)
        for file_name, content in files.items():
            if isinstance(content, dict):
                mlflow.log_dict(content, f"review/{file_name}")
            else:
                mlflow.log_text(content, f"review/{file_name}")
    return run.info.run_id
