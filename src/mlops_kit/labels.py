"""Labelling: the cases of a review set get the true class a person gives them.

Files are for people: ``export_for_labelling`` writes a CSV with an empty ``label`` column under
``review/<version>/`` for a human to fill in, and ``import_labels`` reads it back (a spreadsheet's
',' or ';', UTF-8 or Windows-1252). Unknown labels or cases are refused with the line and the known
labels, and then nothing is saved. Labels are kept in the store's database beside the cases
(``store/reviews.py``); labelling a case again replaces its label. Labelling holds the workspace
lock. Retraining reads the labelled cases back with ``labelled_cases``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_kit.capture import ReviewSet, cases_frame, iso, track_review_run
from mlops_kit.config import Settings
from mlops_kit.store import reviews
from mlops_kit.store.files import atomic_write
from mlops_kit.store.lock import holds_workspace_lock
from mlops_kit.tables import DataValidationError, read_text, sniff_separator

LABEL = "label"
LABEL_COLUMNS = ["case_id", LABEL, "labelled_by", "labelled_at"]


class LabelError(ValueError):
    """A labelled CSV cannot be used; the message names the lines and what is wrong."""


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


def labels_of(review: ReviewSet) -> pd.DataFrame:
    """A review set's labels so far (case_id, label, labelled_by, labelled_at), in case order."""
    rows = reviews.labelled_rows(review.store, [review.version]) if review.version else []
    return pd.DataFrame(
        [{c: row[c] for c in LABEL_COLUMNS} for row in rows], columns=LABEL_COLUMNS
    ).assign(labelled_at=lambda f: f["labelled_at"].map(iso))


def read_labels(path: Path) -> pd.DataFrame:
    """A filled-in CSV as text columns, its header lower-cased; LabelError if it is unusable."""
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


def save_labels(
    settings: Settings, review: ReviewSet, labelled: pd.DataFrame, labelled_by: str, track: bool
) -> LabelResult:
    """Save the validated (case_id, label) rows of a review set; with `track`, log the pass."""
    if review.version is None:
        raise LabelError("this review set is empty: there is nothing to label")
    given = dict(zip(labelled["case_id"].astype(str), labelled[LABEL].astype(str), strict=True))
    reviews.save_labels(settings.store, given, labelled_by)
    labels = labels_of(review)
    result = LabelResult(
        str(review.version),
        labelled_by,
        len(labels),
        len(review) - len(labels),
        {str(k): int(v) for k, v in labels[LABEL].value_counts().items()},
    )
    if track:
        track_review_run(
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
    labelled = validate_labels(read_labels(Path(path)), review)
    return save_labels(settings, review, labelled, f"{labelled_by}: {Path(path).name}", track)


def labelled_cases(settings: Settings, versions: list[str] | None = None) -> pd.DataFrame:
    """Every labelled case of the chosen review sets (default: all), oldest first."""
    rows = reviews.labelled_rows(settings.store, versions)
    if not rows:
        return pd.DataFrame(columns=["case_id", LABEL, "labelled_by", "review_set"])
    sets = {e["version"]: list(e["features"]) for e in reviews.list_review_sets(settings.store)}
    features = list(dict.fromkeys(f for row in rows for f in sets[row["review_set"]]))
    labels = pd.DataFrame([{c: row[c] for c in LABEL_COLUMNS[1:]} for row in rows])
    labels["labelled_at"] = labels["labelled_at"].map(iso)
    return pd.concat(
        [
            cases_frame(rows, features),
            labels,
            pd.DataFrame({"review_set": [row["review_set"] for row in rows]}),
        ],
        axis=1,
    )
