"""The simulated reviewer: labels a review set with the truth the simulator kept aside."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from mlops_kit import capture
from mlops_kit.capture import case_ids
from mlops_kit.labels import labels_of
from mlops_kit.simulator.reviewer import SIMULATED_REVIEWER, label_with_simulator_truth
from mlops_kit.simulator.shifts import TRUTH
from mlops_kit.simulator.traffic import season_records
from mlops_kit.store.lock import WorkspaceBusy, workspace_lock
from tests.loop_helpers import serve_batches


@pytest.fixture
def season(settings) -> pd.DataFrame:
    return season_records(settings)


def test_the_simulated_reviewer_uses_the_kept_aside_truth(settings, season):
    sent = serve_batches(settings, season, batches=2, seed=8)
    review = capture.capture(settings, track=False)
    done = label_with_simulator_truth(settings, review, track=False)
    assert done.labelled == len(review) and done.unlabelled == 0
    assert done.labelled_by == SIMULATED_REVIEWER
    truth = dict(zip(case_ids(sent), sent[TRUTH], strict=True))
    labels = labels_of(review)
    pairs = zip(labels["case_id"], labels["label"], strict=True)
    assert all(truth[c] == label for c, label in pairs)


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
            label_with_simulator_truth(impatient, review, track=False)
    finally:
        release.set()
        holder.join()
    assert labels_of(review).empty
    assert label_with_simulator_truth(settings, review, track=False).unlabelled == 0
