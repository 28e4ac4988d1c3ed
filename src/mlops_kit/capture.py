"""Capture and labelling: low-confidence predictions become a versioned review set, then labelled cases.

*"Dados com baixos índices de segurança no resultado são captados e destinados então para compor
uma nova base de dados."* A capture takes every low-confidence prediction of the log that no earlier
review set holds, so a case is never lost and never captured twice. A review set lives in the
workspace under ``review/<version>/`` (the version is the content hash of its cases), with a CSV
for a human to fill in (an empty ``label`` column) and, once labelled, ``labels.csv``.

Two ways to label: ``import_labels`` reads the CSV a human filled in (unknown labels are refused
with the line and the known labels), and ``label_with_simulator_truth`` — the stand-in for the
unattended demo — copies the true class the traffic simulator kept aside.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd

from mlops_kit import tracking
from mlops_kit.config import Settings
from mlops_kit.model import PROBA_PREFIX
from mlops_kit.store.predictions import BASE_COLUMNS

SIMULATED_REVIEWER = "simulated-reviewer (simulator truth)"
LABEL = "label"
ID_COLUMNS = ["case_id", "prediction_id", "request_id", "record_index", "created_at"]
ANSWER_COLUMNS = ["model_version", "predicted", "confidence"]


class LabelError(ValueError):
    """A labelled CSV cannot be used; the message names the lines and what is wrong."""


def review_dir(settings: Settings) -> Path:
    """Where review sets are kept (git-ignored workspace)."""
    return settings.workspace / "review"


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    folder = review_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # two captures at once would take the same cases twice
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    folder: Path | None = None
    manifest: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cases)

    def table(self) -> pd.DataFrame:
        """The cases as a reviewer reads them: inputs, the model's answer and its confidence."""
        out = self.cases[[*self.features, "predicted", "confidence"]].copy()
        out["confidence"] = out["confidence"].round(3)
        return out.reset_index(drop=True)

    def labels(self) -> pd.DataFrame:
        """The labels given so far (case_id, label, labelled_by)."""
        path = self.folder / "labels.csv" if self.folder else None
        if path is None or not path.exists():
            return pd.DataFrame(columns=["case_id", LABEL, "labelled_by"])
        return pd.read_csv(path, dtype=str, keep_default_na=False)


def _features_of(predictions: pd.DataFrame) -> list[str]:
    return [
        c for c in predictions.columns if c not in BASE_COLUMNS and not c.startswith(PROBA_PREFIX)
    ]


def captured_case_ids(settings: Settings) -> set[str]:
    """Every case id already held by a review set."""
    ids: set[str] = set()
    for entry in review_sets(settings):
        path = review_dir(settings) / entry["version"] / "cases.csv"
        if path.exists():
            ids.update(pd.read_csv(path, usecols=["case_id"], dtype=str)["case_id"])
    return ids


def review_sets(settings: Settings) -> list[dict[str, object]]:
    """The catalogue of review sets, oldest first."""
    path = review_dir(settings) / "catalog.json"
    return json.loads(path.read_text()) if path.exists() else []


def capture(
    settings: Settings,
    predictions: pd.DataFrame | None = None,
    *,
    since: datetime | None = None,
    last: int | None = None,
    threshold: float | None = None,
    track: bool = True,
) -> ReviewSet:
    """Put every low-confidence prediction that no review set holds yet into a new review set."""
    from mlops_kit.store.predictions import read_predictions

    with _locked(settings):
        log = read_predictions(settings, since, last) if predictions is None else predictions
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
        cases["created_at"] = pd.to_datetime(cases["created_at"], utc=True).map(
            lambda t: t.isoformat()
        )
        text = cases.to_csv(index=False)
        version = hashlib.sha256(text.encode()).hexdigest()[:12]
        folder = review_dir(settings) / version
        folder.mkdir(parents=True, exist_ok=True)
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        manifest = {
            "version": version,
            "created_at": created_at,
            "cases": len(cases),
            "threshold": threshold,
            "rule": "API low-confidence flag" if threshold is None else f"confidence < {threshold}",
            "features": features,
            "classes": classes,
            "model_versions": sorted(set(cases["model_version"].astype(str))),
            "prediction_ids": [
                int(cases["prediction_id"].min()),
                int(cases["prediction_id"].max()),
            ],
            "predicted": {str(k): int(v) for k, v in cases["predicted"].value_counts().items()},
        }
        _write(folder / "cases.csv", text)
        _write(folder / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        catalogue = review_sets(settings)
        catalogue.append(
            {"version": version, "created_at": created_at, "cases": len(cases), "folder": version}
        )
        _write(review_dir(settings) / "catalog.json", json.dumps(catalogue, indent=2))
    review = ReviewSet(version, created_at, cases, features, classes, threshold, folder, manifest)
    if track:
        _track(
            settings,
            "capture",
            {"review_set": version, "model_versions": ",".join(manifest["model_versions"])},
            {"cases": float(len(cases))},
            [folder / "cases.csv", folder / "manifest.json"],
        )
    return review


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def load_review_set(settings: Settings, version: str | None = None) -> ReviewSet:
    """A review set by version (default: the newest)."""
    catalogue = review_sets(settings)
    if not catalogue:
        raise ValueError(
            "no review set yet: capture low-confidence cases first (mlops-kit capture)"
        )
    versions = [str(e["version"]) for e in catalogue]
    chosen = versions[-1] if version is None else version
    matches = [v for v in versions if v.startswith(chosen)] if chosen else []
    if len(matches) != 1:
        raise ValueError(f"review set '{version}' not found; known: {', '.join(versions)}")
    folder = review_dir(settings) / matches[0]
    manifest = json.loads((folder / "manifest.json").read_text())
    cases = pd.read_csv(folder / "cases.csv", dtype={"case_id": str, "request_id": str})
    return ReviewSet(
        manifest["version"],
        manifest["created_at"],
        cases,
        list(manifest["features"]),
        list(manifest["classes"]),
        manifest["threshold"],
        folder,
        manifest,
    )


def export_for_labelling(review: ReviewSet, path: Path | str | None = None) -> Path:
    """Write the CSV a human fills in: each captured case with an empty `label` column."""
    if review.folder is None:
        raise ValueError("this review set is empty: there is nothing to label")
    target = Path(path) if path else review.folder / "to_label.csv"
    table = review.cases[["case_id", *review.features, "predicted", "confidence"]].copy()
    table["confidence"] = table["confidence"].round(3)
    table[LABEL] = ""
    target.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(target, index=False)
    return target


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
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
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
    if review.folder is None:
        raise LabelError("this review set is empty: there is nothing to label")
    with _locked(settings):
        existing = review.labels()
        new = labelled.assign(labelled_by=labelled_by)
        merged = pd.concat([existing[~existing["case_id"].isin(new["case_id"])], new])
        order = {c: i for i, c in enumerate(review.cases["case_id"].astype(str))}
        merged = merged.sort_values("case_id", key=lambda s: s.map(order)).reset_index(drop=True)
        _write(review.folder / "labels.csv", merged.to_csv(index=False))
    result = LabelResult(
        str(review.version),
        labelled_by,
        len(merged),
        len(review) - len(merged),
        {str(k): int(v) for k, v in merged[LABEL].value_counts().items()},
    )
    if track:
        _track(
            settings,
            "labelling",
            {"review_set": str(review.version), "labelled_by": labelled_by},
            {"labelled": float(result.labelled), "unlabelled": float(result.unlabelled)},
            [review.folder / "labels.csv"],
        )
    return result


def import_labels(
    settings: Settings,
    review: ReviewSet,
    path: Path | str,
    *,
    labelled_by: str = "human",
    track: bool = True,
) -> LabelResult:
    """Read the CSV a human filled in; refuse unknown labels or cases with a clear message."""
    if review.folder is None:
        raise LabelError("this review set is empty: there is nothing to label")
    labelled = validate_labels(_read_labels(Path(path)), review)
    return _save_labels(settings, review, labelled, f"{labelled_by}: {Path(path).name}", track)


def label_with_simulator_truth(
    settings: Settings, review: ReviewSet, *, track: bool = True
) -> LabelResult:
    """The demo's stand-in for a human reviewer: the true class the traffic simulator kept aside."""
    from mlops_kit.traffic import TRUTH, read_truth

    if review.folder is None:
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
    frames = []
    for entry in review_sets(settings):
        version = str(entry["version"])
        if versions is not None and version not in versions:
            continue
        review = load_review_set(settings, version)
        labels = review.labels()
        if labels.empty:
            continue
        cases = review.cases.assign(case_id=review.cases["case_id"].astype(str))
        frames.append(cases.merge(labels, on="case_id").assign(review_set=version))
    if not frames:
        return pd.DataFrame(columns=["case_id", LABEL, "labelled_by", "review_set"])
    return pd.concat(frames, ignore_index=True)


def _track(
    settings: Settings,
    name: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    artifacts: list[Path],
) -> str:
    tracking.configure(settings)
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({"pipeline": name, **tags, **tracking.invocation_tags()})
        mlflow.log_metrics(metrics)
        for path in artifacts:
            mlflow.log_artifact(str(path), "review")
    return run.info.run_id
