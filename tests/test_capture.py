"""Capture: no case lost or captured twice, one selection by the database, versioned review sets."""

from __future__ import annotations

import hashlib
import threading

import pandas as pd
import pytest

from mlops_kit import capture
from mlops_kit.labels import labelled_cases
from mlops_kit.simulator.reviewer import label_with_simulator_truth
from mlops_kit.simulator.traffic import season_records
from mlops_kit.store.predictions.window import LogWindow
from tests.helpers import run_cli
from tests.loop_helpers import low_confidence_ids, serve_batches


@pytest.fixture
def season(settings) -> pd.DataFrame:
    return season_records(settings)


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


def test_review_sets_and_labels_live_in_the_store_a_team_shares(settings, season, tmp_path):
    shared = f"sqlite:///{tmp_path / 'team-store.db'}"
    alice = settings.model_copy(update={"store_url": shared})
    bob = alice.model_copy(update={"workspace": tmp_path / "bob"})
    serve_batches(alice, season, batches=2, seed=12)
    review = capture.capture(alice, track=False)
    label_with_simulator_truth(alice, review, track=False)

    assert len(capture.capture(bob, track=False)) == 0  # already captured by alice
    seen = capture.load_review_set(bob)
    assert seen.version == review.version and len(seen) == len(review) == 8
    assert len(labelled_cases(bob)) == 8
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


def test_a_case_is_captured_once_and_a_higher_threshold_takes_the_extra_cases(
    settings, season, tmp_path
):
    """The API flagged 4 of every 10 (confidence 0.55); --threshold 0.99 takes the 0.95 ones too."""
    serve_batches(settings, season, batches=2, seed=15)  # 20 predictions, 8 flagged by the API
    flagged = capture.capture(settings, track=False)
    assert len(flagged) == 8 and set(flagged.cases["case_id"]) == low_confidence_ids(settings)
    assert capture.capture(settings, track=False).version is None  # captured once: never again

    done = run_cli("capture", "--threshold", "0.99", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    extra = capture.load_review_set(settings)
    assert f"review set {extra.version}: 12 case(s)" in done.stdout
    assert not set(extra.cases["case_id"]) & set(flagged.cases["case_id"])
    assert (extra.cases["confidence"] == 0.95).all()
    assert extra.manifest["rule"] == "confidence < 0.99"
    assert capture.capture(settings, threshold=0.99, track=False).version is None
