"""Labelling: a human's CSV exported and read back, label validation, labels kept in the store."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_kit import capture
from mlops_kit.capture import ReviewSet
from mlops_kit.labels import (
    LabelError,
    export_for_labelling,
    import_labels,
    labelled_cases,
    labels_of,
)
from mlops_kit.simulator.traffic import season_records
from tests.helpers import run_cli
from tests.loop_helpers import serve_batches


@pytest.fixture
def season(settings) -> pd.DataFrame:
    return season_records(settings)


def filled(settings, review: ReviewSet, labels: dict[int, str]) -> str:
    """The exported CSV with some rows' label filled in, as a reviewer saves it."""
    path = export_for_labelling(review)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert table.columns[-1] == "label" and (table["label"] == "").all()
    for row, label in labels.items():
        table.loc[row, "label"] = label
    out = settings.workspace / "filled.csv"
    table.to_csv(out, index=False)
    return str(out)


def test_a_human_labels_through_the_csv(settings, season):
    serve_batches(settings, season, batches=1, seed=5)
    review = capture.capture(settings, track=False)
    path = filled(settings, review, {0: "Gentoo", 1: " adelie ", 2: ""})
    done = import_labels(settings, review, path, track=False)
    assert (done.labelled, done.unlabelled) == (2, len(review) - 2)
    assert done.label_counts == {"Adelie": 1, "Gentoo": 1}  # case and spaces do not matter
    assert done.labelled_by == "human: filled.csv"
    labelled = labelled_cases(settings)
    assert list(labelled["label"]) == ["Gentoo", "Adelie"]


def test_unknown_labels_are_refused_with_the_line_and_the_known_labels(settings, season):
    serve_batches(settings, season, batches=1, seed=6)
    review = capture.capture(settings, track=False)
    path = filled(settings, review, {0: "Gentoo", 2: "Adelei", 3: "penguin"})
    with pytest.raises(LabelError) as info:
        import_labels(settings, review, path, track=False)
    message = str(info.value)
    assert "line 4 ('Adelei')" in message and "line 5 ('penguin')" in message
    assert "the known labels are: Adelie, Chinstrap, Gentoo" in message
    assert labels_of(review).empty  # nothing of a refused file is kept


def test_other_broken_label_files_are_refused(settings, season):
    serve_batches(settings, season, batches=1, seed=7)
    review = capture.capture(settings, track=False)
    stranger = settings.workspace / "stranger.csv"
    pd.DataFrame({"case_id": ["nope#1"], "label": ["Adelie"]}).to_csv(stranger, index=False)
    with pytest.raises(LabelError, match="not in review set"):
        import_labels(settings, review, stranger, track=False)
    no_label = settings.workspace / "no_label.csv"
    review.cases[["case_id"]].to_csv(no_label, index=False)
    with pytest.raises(LabelError, match="lacks the column"):
        import_labels(settings, review, no_label, track=False)
    with pytest.raises(LabelError, match="not found"):
        import_labels(settings, review, settings.workspace / "missing.csv", track=False)


def test_cli_label_import_refuses_an_unknown_label(settings, season, tmp_path):
    serve_batches(settings, season, batches=1, seed=9)
    review = capture.capture(settings, track=False)
    path = filled(settings, review, {0: "Emperor"})
    done = run_cli("label", "--import", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown label(s): line 2 ('Emperor')" in done.stderr


def test_a_refused_file_keeps_the_earlier_labels_and_labelling_again_replaces(settings, season):
    serve_batches(settings, season, batches=1, seed=10)
    review = capture.capture(settings, track=False)
    first = filled(settings, review, {0: "Gentoo", 1: "Adelie"})
    import_labels(settings, review, first, labelled_by="ana", track=False)

    broken = filled(settings, review, {0: "Adelie", 1: "Emperor"})
    with pytest.raises(LabelError, match="Emperor"):
        import_labels(settings, review, broken, labelled_by="bruno", track=False)
    assert list(labels_of(review)["label"]) == ["Gentoo", "Adelie"]  # the pass changed nothing

    again = filled(settings, review, {0: "Chinstrap"})
    done = import_labels(settings, review, again, labelled_by="bruno", track=False)
    labels = labels_of(review)
    assert list(labels["label"]) == ["Chinstrap", "Adelie"] and done.labelled == 2
    assert list(labels["labelled_by"]) == ["bruno: filled.csv", "ana: filled.csv"]
