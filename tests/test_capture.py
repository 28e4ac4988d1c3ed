"""Capture and labelling: no case lost or captured twice, versioned review sets, label validation."""

from __future__ import annotations

import hashlib
import threading

import pandas as pd
import pytest

from mlops_kit import capture, traffic
from mlops_kit.store.lock import WorkspaceBusy, workspace_lock
from mlops_kit.store.predictions.window import LogWindow, read_predictions
from tests.helpers import log_predictions, run_cli


def serve_batches(settings, season: pd.DataFrame, batches: int, seed: int) -> pd.DataFrame:
    """Log `batches` requests of 10 records as the API would; every third record is low-confidence.

    The truth of each record is kept the way the simulator keeps it; returns what was logged.
    """
    drawn = traffic.draw_traffic(season, batches * 10, shift="calliper", seed=seed)
    drawn["request_id"] = [f"s{seed}-b{i // 10}" for i in range(len(drawn))]
    drawn["record_index"] = [i % 10 for i in range(len(drawn))]
    features = [c for c in season.columns if c not in (traffic.TRUTH, "source_row")]
    confidence = [0.55 if i % 3 == 0 else 0.95 for i in drawn["record_index"]]
    answers = drawn.assign(
        predicted="Adelie",
        confidence=confidence,
        low_confidence=[c < 0.7 for c in confidence],
        proba_Adelie=confidence,
        proba_Chinstrap=[(1 - c) / 2 for c in confidence],
        proba_Gentoo=[(1 - c) / 2 for c in confidence],
    )
    log_predictions(settings, answers, features)
    path = traffic.truth_dir(settings) / f"s{seed}.csv"
    traffic.write_truth(path, drawn, features, {"run_id": f"s{seed}", "phase": "test"})
    return drawn


@pytest.fixture
def season(settings) -> pd.DataFrame:
    return traffic.season_records(settings)


def low_confidence_ids(settings) -> set[str]:
    log = read_predictions(settings)
    return set(capture.case_ids(log[log["low_confidence"]]))


def test_capture_never_loses_or_duplicates_a_case(settings, season):
    serve_batches(settings, season, batches=3, seed=1)
    first = capture.capture(settings, track=False)
    assert len(first) == 12  # records 0, 3, 6, 9 of each batch of 10
    serve_batches(settings, season, batches=2, seed=2)
    second = capture.capture(settings, track=False)
    assert len(second) == 8
    third = capture.capture(settings, track=False)
    assert len(third) == 0 and third.version is None  # nothing new: no empty review set

    first_ids, second_ids = set(first.cases["case_id"]), set(second.cases["case_id"])
    assert not first_ids & second_ids
    assert first_ids | second_ids == low_confidence_ids(settings)
    assert [e["version"] for e in capture.review_sets(settings)] == [
        first.version,
        second.version,
    ]


def test_a_review_set_is_versioned_by_its_content_and_read_back_as_captured(settings, season):
    serve_batches(settings, season, batches=2, seed=3)
    review = capture.capture(settings, track=False)
    text = review.cases.to_csv(index=False).encode()
    assert review.version == hashlib.sha256(text).hexdigest()[:12]
    assert review.folder == settings.workspace / "review" / review.version

    again = capture.load_review_set(settings)
    assert again.version == review.version
    pd.testing.assert_frame_equal(again.cases, review.cases)
    assert again.manifest == review.manifest
    assert review.manifest["model_versions"] == ["1"]
    assert capture.load_review_set(settings, review.version[:6]).version == review.version


def test_concurrent_captures_take_each_case_once(settings, season):
    serve_batches(settings, season, batches=6, seed=4)
    results: list[capture.ReviewSet] = []
    threads = [
        threading.Thread(target=lambda: results.append(capture.capture(settings, track=False)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for r in results for i in r.cases["case_id"]]
    assert len(ids) == len(set(ids)) == len(low_confidence_ids(settings)) == 24


def filled(settings, review: capture.ReviewSet, labels: dict[int, str]) -> str:
    """The exported CSV with some rows' label filled in, as a reviewer saves it."""
    path = capture.export_for_labelling(review)
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
    done = capture.import_labels(settings, review, path, track=False)
    assert (done.labelled, done.unlabelled) == (2, len(review) - 2)
    assert done.label_counts == {"Adelie": 1, "Gentoo": 1}  # case and spaces do not matter
    assert done.labelled_by == "human: filled.csv"
    labelled = capture.labelled_cases(settings)
    assert list(labelled["label"]) == ["Gentoo", "Adelie"]


def test_unknown_labels_are_refused_with_the_line_and_the_known_labels(settings, season):
    serve_batches(settings, season, batches=1, seed=6)
    review = capture.capture(settings, track=False)
    path = filled(settings, review, {0: "Gentoo", 2: "Adelei", 3: "penguin"})
    with pytest.raises(capture.LabelError) as info:
        capture.import_labels(settings, review, path, track=False)
    message = str(info.value)
    assert "line 4 ('Adelei')" in message and "line 5 ('penguin')" in message
    assert "the known labels are: Adelie, Chinstrap, Gentoo" in message
    assert review.labels().empty  # nothing of a refused file is kept


def test_other_broken_label_files_are_refused(settings, season):
    serve_batches(settings, season, batches=1, seed=7)
    review = capture.capture(settings, track=False)
    stranger = settings.workspace / "stranger.csv"
    pd.DataFrame({"case_id": ["nope#1"], "label": ["Adelie"]}).to_csv(stranger, index=False)
    with pytest.raises(capture.LabelError, match="not in review set"):
        capture.import_labels(settings, review, stranger, track=False)
    no_label = settings.workspace / "no_label.csv"
    review.cases[["case_id"]].to_csv(no_label, index=False)
    with pytest.raises(capture.LabelError, match="lacks the column"):
        capture.import_labels(settings, review, no_label, track=False)
    with pytest.raises(capture.LabelError, match="not found"):
        capture.import_labels(settings, review, settings.workspace / "missing.csv", track=False)


def test_the_simulated_reviewer_uses_the_kept_aside_truth(settings, season):
    sent = serve_batches(settings, season, batches=2, seed=8)
    review = capture.capture(settings, track=False)
    done = capture.label_with_simulator_truth(settings, review, track=False)
    assert done.labelled == len(review) and done.unlabelled == 0
    assert done.labelled_by == capture.SIMULATED_REVIEWER
    truth = dict(zip(capture.case_ids(sent), sent[traffic.TRUTH], strict=True))
    labels = review.labels()
    pairs = zip(labels["case_id"], labels["label"], strict=True)
    assert all(truth[c] == label for c, label in pairs)


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
    capture.import_labels(settings, review, first, labelled_by="ana", track=False)

    broken = filled(settings, review, {0: "Adelie", 1: "Emperor"})
    with pytest.raises(capture.LabelError, match="Emperor"):
        capture.import_labels(settings, review, broken, labelled_by="bruno", track=False)
    assert list(review.labels()["label"]) == ["Gentoo", "Adelie"]  # the pass changed nothing

    again = filled(settings, review, {0: "Chinstrap"})
    done = capture.import_labels(settings, review, again, labelled_by="bruno", track=False)
    labels = review.labels()
    assert list(labels["label"]) == ["Chinstrap", "Adelie"] and done.labelled == 2
    assert list(labels["labelled_by"]) == ["bruno: filled.csv", "ana: filled.csv"]


def test_labelling_waits_for_a_busy_workspace_and_then_saves_nothing(settings, season):
    serve_batches(settings, season, batches=1, seed=11)
    review = capture.capture(settings, track=False)
    impatient = settings.model_copy(update={"lock_timeout": 0.2})
    held, release = threading.Event(), threading.Event()

    def another_command() -> None:
        with workspace_lock(settings, "retrain"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=another_command)
    holder.start()
    held.wait(30)
    try:
        with pytest.raises(WorkspaceBusy, match="retrain"):
            capture.label_with_simulator_truth(impatient, review, track=False)
    finally:
        release.set()
        holder.join()
    assert review.labels().empty
    assert capture.label_with_simulator_truth(settings, review, track=False).unlabelled == 0


def test_review_sets_and_labels_live_in_the_store_a_team_shares(settings, season, tmp_path):
    shared = f"sqlite:///{tmp_path / 'team-store.db'}"
    alice = settings.model_copy(update={"store_url": shared})
    bob = alice.model_copy(update={"workspace": tmp_path / "bob"})
    serve_batches(alice, season, batches=2, seed=12)
    review = capture.capture(alice, track=False)
    capture.label_with_simulator_truth(alice, review, track=False)

    assert len(capture.capture(bob, track=False)) == 0  # already captured by alice
    seen = capture.load_review_set(bob)
    assert seen.version == review.version and len(seen) == len(review) == 8
    assert len(capture.labelled_cases(bob)) == 8
    assert not (bob.workspace / "review").exists()  # the record is the database, not files


def test_capture_reads_only_uncaptured_low_confidence_predictions_in_chunks(
    settings, season, monkeypatch
):
    """Chunks of 7 rows: only the 24 low-confidence predictions are read, and all of them kept."""
    read: list[int] = []
    chunks = LogWindow.chunks

    def counted(self, *conditions, size):
        for chunk in chunks(self, *conditions, size=size):
            read.append(len(chunk))
            yield chunk

    monkeypatch.setattr(capture, "CHUNK_ROWS", 7)
    monkeypatch.setattr(LogWindow, "chunks", counted)
    serve_batches(settings, season, batches=6, seed=13)  # 60 predictions, 24 low-confidence
    first = capture.capture(settings, track=False)
    assert read == [7, 7, 7, 3]
    assert set(first.cases["case_id"]) == low_confidence_ids(settings)

    read.clear()
    serve_batches(settings, season, batches=1, seed=14)
    second = capture.capture(settings, track=False)
    assert read == [4] and len(second) == 4  # the captured ones are left in the database
    assert capture.capture(settings, threshold=0.6, track=False).version is None
    assert len(capture.capture(settings, threshold=0.99, track=False)) == 42  # the others
