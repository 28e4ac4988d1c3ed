"""Capture and labelling: low-confidence predictions become a versioned review set, then labelled cases.

*"Dados com baixos índices de segurança no resultado são captados e destinados então para compor
uma nova base de dados."* A capture takes every low-confidence prediction of the log that no earlier
review set holds, so a case is never lost and never captured twice. Review sets, their cases and
their labels are kept in the store's database (``store/reviews.py``); the version of a review set
is the content hash of its cases. Files are for people: ``export_for_labelling`` writes a CSV with
an empty ``label`` column under ``review/<version>/`` for a human to fill in.

Two ways to label: ``import_labels`` reads the CSV a human filled in (unknown labels are refused
with the line and the known labels, and then nothing is saved), and ``label_with_simulator_truth``
— the stand-in for the unattended demo — copies the true class the traffic simulator kept aside.
Capturing and labelling hold the workspace lock.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import sqlalchemy as sa

from mlops_kit import tracking
from mlops_kit.config import Settings
from mlops_kit.model import PROBA_PREFIX
from mlops_kit.store import reviews
from mlops_kit.store.files import atomic_write
from mlops_kit.store.lock import holds_workspace_lock
from mlops_kit.store.predictions.entry import BASE_COLUMNS
from mlops_kit.store.predictions.entry import predictions as log_table
from mlops_kit.store.predictions.window import LogWindow
from mlops_kit.tables import DataValidationError, read_text, sniff_separator

SIMULATED_REVIEWER = "simulated-reviewer (simulator truth)"
LABEL = "label"
ID_COLUMNS = ["case_id", "prediction_id", "request_id", "record_index", "created_at"]
ANSWER_COLUMNS = ["model_version", "predicted", "confidence"]
LABEL_COLUMNS = ["case_id", LABEL, "labelled_by", "labelled_at"]


class LabelError(ValueError):
    """A labelled CSV cannot be used; the message names the lines and what is wrong."""


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

    def labels(self) -> pd.DataFrame:
        """The labels given so far (case_id, label, labelled_by, labelled_at), in case order."""
        rows = reviews.labelled_rows(self.store, [self.version]) if self.version else []
        return pd.DataFrame(
            [{c: row[c] for c in LABEL_COLUMNS} for row in rows], columns=LABEL_COLUMNS
        ).assign(labelled_at=lambda f: f["labelled_at"].map(_iso))


def _features_of(predictions: pd.DataFrame) -> list[str]:
    return [
        c for c in predictions.columns if c not in BASE_COLUMNS and not c.startswith(PROBA_PREFIX)
    ]


def captured_case_ids(settings: Settings) -> set[str]:
    """Every case id already held by a review set."""
    return reviews.captured_case_ids(settings.store)


def review_sets(settings: Settings) -> list[dict[str, object]]:
    """The catalogue of review sets, oldest first (version, created_at, cases, folder)."""
    return [
        {
            "version": row["version"],
            "created_at": _iso(row["created_at"]),
            "cases": int(row["cases"]),
            "folder": row["version"],
        }
        for row in reviews.list_review_sets(settings.store)
    ]


def _iso(value: datetime) -> str:
    return reviews.utc(value).isoformat()


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


CHUNK_ROWS = 10_000  # low-confidence predictions read from the store at a time


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


@holds_workspace_lock("capture")
def capture(
    settings: Settings,
    predictions: pd.DataFrame | None = None,
    *,
    since: datetime | None = None,
    last: int | None = None,
    threshold: float | None = None,
    track: bool = True,
) -> ReviewSet:
    """Put every low-confidence prediction that no review set holds yet into a new review set.

    From the store, only those predictions are read (chosen by SQL, in chunks), not the whole log.
    """

    def candidates() -> pd.DataFrame:
        if predictions is not None:
            return predictions
        return uncaptured_low_confidence(settings, since=since, last=last, threshold=threshold)

    try:
        review = _capture(settings, candidates(), threshold)
    except reviews.CaseAlreadyCaptured:  # another machine's capture took some: take the rest
        review = _capture(settings, candidates(), threshold)
    if track and review.version is not None:
        _track(
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


def _capture(settings: Settings, log: pd.DataFrame, threshold: float | None) -> ReviewSet:
    features = _features_of(log)
    classes = [c[len(PROBA_PREFIX) :] for c in log.columns if c.startswith(PROBA_PREFIX)]
    if log.empty:
        low = log
    elif threshold is None:  # the API's own flag, set with its threshold when it answered
        low = log[log["low_confidence"].astype(bool)]
    else:
        low = log[log["confidence"] < threshold]
    low = low.assign(case_id=case_ids(low)) if len(low) else low.assign(case_id=[])
    low = low[~low["case_id"].isin(captured_case_ids(settings))]
    low = low.drop_duplicates("case_id").sort_values("id", kind="stable")
    cases = low.rename(columns={"id": "prediction_id"})
    cases = cases[[*ID_COLUMNS, *ANSWER_COLUMNS, *features]].reset_index(drop=True)
    if not len(cases):
        return ReviewSet(None, "", cases, features, classes, threshold)
    cases["created_at"] = pd.to_datetime(cases["created_at"], utc=True).map(lambda t: t.isoformat())
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
    cases = _cases_frame(reviews.cases_of(settings.store, entry["version"]), features)
    review = ReviewSet(
        entry["version"],
        _iso(entry["created_at"]),
        cases,
        features,
        list(entry["classes"]),
        entry["threshold"],
        review_dir(settings) / entry["version"],
        store=settings.store,
    )
    review.manifest = _manifest(review, entry["rule"])
    return review


def _cases_frame(rows: list[dict[str, Any]], features: list[str]) -> pd.DataFrame:
    """Stored case rows as the table capture made: ids, the model's answer, then the inputs."""
    columns = [*ID_COLUMNS, *ANSWER_COLUMNS]
    base = pd.DataFrame([{c: row[c] for c in columns} for row in rows], columns=columns)
    base["created_at"] = base["created_at"].map(_iso)
    inputs = pd.DataFrame([row["inputs"] for row in rows], index=base.index)
    return pd.concat([base, inputs.reindex(columns=features)], axis=1)


def export_for_labelling(review: ReviewSet, path: Path | str | None = None) -> Path:
    """Write the CSV a human fills in: each captured case with an empty `label` column."""
    if review.folder is None:
        raise ValueError("this review set is empty: there is nothing to label")
    target = Path(path) if path else review.folder / "to_label.csv"
    table = review.cases[["case_id", *review.features, "predicted", "confidence"]].copy()
    table["confidence"] = table["confidence"].round(3)
    table[LABEL] = ""
    return atomic_write(target, table.to_csv(index=False))


@dataclass
class LabelResult:
    """What a labelling pass did to a review set."""

    review_set: str
    labelled_by: str
    labelled: int
    unlabelled: int
    label_counts: dict[str, int]

    def summary(self) -> pd.DataFrame:
        """A two-column table of the labelling pass."""
        rows = [
            ("labelled by", self.labelled_by),
            ("cases labelled", str(self.labelled)),
            ("cases still without a label", str(self.unlabelled)),
            ("labels", ", ".join(f"{k}: {v}" for k, v in sorted(self.label_counts.items()))),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])


def _read_labels(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise LabelError(f"labelled file not found: {path}")
    try:  # as saved by a spreadsheet: ',' or ';' (Excel in Portuguese), UTF-8 or Windows-1252
        text, _ = read_text(path)
        frame = pd.read_csv(
            io.StringIO(text), sep=sniff_separator(text), dtype=str, keep_default_na=False
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, DataValidationError) as exc:
        raise LabelError(f"{path} is not a readable CSV ({exc})") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("case_id", LABEL) if c not in frame.columns]
    if missing:
        raise LabelError(
            f"{path.name} lacks the column(s) {', '.join(missing)}; fill in the `label` column of "
            "the exported file and keep its `case_id` column"
        )
    return frame


def validate_labels(frame: pd.DataFrame, review: ReviewSet) -> pd.DataFrame:
    """Check a filled-in table against the review set; return (case_id, label) for labelled rows."""
    frame = frame.assign(
        case_id=frame["case_id"].astype(str).str.strip(), label=frame[LABEL].astype(str).str.strip()
    )
    line = pd.Series(frame.index + 2, index=frame.index)  # the header is line 1
    unknown_cases = ~frame["case_id"].isin(set(review.cases["case_id"].astype(str)))
    if unknown_cases.any():
        shown = ", ".join(
            f"line {line[i]} ({frame['case_id'][i]!r})" for i in frame.index[unknown_cases][:5]
        )
        raise LabelError(
            f"{int(unknown_cases.sum())} row(s) name a case that is not in review set "
            f"{review.version}: {shown}"
        )
    given = frame[frame[LABEL] != ""]
    canonical = {c.lower(): c for c in review.classes}
    mapped = given[LABEL].str.lower().map(canonical)
    bad = mapped.isna()
    if bad.any():
        shown = ", ".join(f"line {line[i]} ({given[LABEL][i]!r})" for i in given.index[bad][:5])
        more = f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""
        raise LabelError(
            f"unknown label(s): {shown}{more}; the known labels are: {', '.join(review.classes)}"
        )
    labelled = pd.DataFrame({"case_id": given["case_id"], LABEL: mapped})
    conflicts = labelled.groupby("case_id")[LABEL].nunique()
    conflicts = conflicts[conflicts > 1]
    if len(conflicts):
        raise LabelError(f"case(s) given two different labels: {', '.join(conflicts.index[:5])}")
    return labelled.drop_duplicates("case_id").reset_index(drop=True)


def _save_labels(
    settings: Settings, review: ReviewSet, labelled: pd.DataFrame, labelled_by: str, track: bool
) -> LabelResult:
    if review.version is None:
        raise LabelError("this review set is empty: there is nothing to label")
    given = dict(zip(labelled["case_id"].astype(str), labelled[LABEL].astype(str), strict=True))
    reviews.save_labels(settings.store, given, labelled_by)
    labels = review.labels()
    result = LabelResult(
        str(review.version),
        labelled_by,
        len(labels),
        len(review) - len(labels),
        {str(k): int(v) for k, v in labels[LABEL].value_counts().items()},
    )
    if track:
        _track(
            settings,
            "labelling",
            {"review_set": str(review.version), "labelled_by": labelled_by},
            {"labelled": float(result.labelled), "unlabelled": float(result.unlabelled)},
            {"labels.csv": labels.to_csv(index=False)},
        )
    return result


@holds_workspace_lock("labelling")
def import_labels(
    settings: Settings,
    review: ReviewSet,
    path: Path | str,
    *,
    labelled_by: str = "human",
    track: bool = True,
) -> LabelResult:
    """Read the CSV a human filled in; refuse unknown labels or cases with a clear message."""
    if review.version is None:
        raise LabelError("this review set is empty: there is nothing to label")
    labelled = validate_labels(_read_labels(Path(path)), review)
    return _save_labels(settings, review, labelled, f"{labelled_by}: {Path(path).name}", track)


@holds_workspace_lock("labelling")
def label_with_simulator_truth(
    settings: Settings, review: ReviewSet, *, track: bool = True
) -> LabelResult:
    """The demo's stand-in for a human reviewer: the true class the traffic simulator kept aside."""
    from mlops_kit.traffic import TRUTH, read_truth

    if review.version is None:
        raise LabelError("this review set is empty: there is nothing to label")
    truth = read_truth(settings)
    truth = truth.assign(case_id=case_ids(truth)) if len(truth) else truth.assign(case_id=[])
    known = dict(zip(truth["case_id"].astype(str), truth[TRUTH].astype(str), strict=True))
    ids = review.cases["case_id"].astype(str)
    labelled = pd.DataFrame({"case_id": ids, LABEL: ids.map(known)}).dropna()
    labelled = validate_labels(labelled, review)
    return _save_labels(settings, review, labelled, SIMULATED_REVIEWER, track)


def labelled_cases(settings: Settings, versions: list[str] | None = None) -> pd.DataFrame:
    """Every labelled case of the chosen review sets (default: all), oldest first."""
    rows = reviews.labelled_rows(settings.store, versions)
    if not rows:
        return pd.DataFrame(columns=["case_id", LABEL, "labelled_by", "review_set"])
    sets = {e["version"]: list(e["features"]) for e in reviews.list_review_sets(settings.store)}
    features = list(dict.fromkeys(f for row in rows for f in sets[row["review_set"]]))
    labels = pd.DataFrame([{c: row[c] for c in LABEL_COLUMNS[1:]} for row in rows])
    labels["labelled_at"] = labels["labelled_at"].map(_iso)
    return pd.concat(
        [
            _cases_frame(rows, features),
            labels,
            pd.DataFrame({"review_set": [row["review_set"] for row in rows]}),
        ],
        axis=1,
    )


def _track(
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
