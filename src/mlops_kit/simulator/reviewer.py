"""The simulated reviewer: the demo's stand-in for a human, labelling with the simulator's truth.

The traffic simulator kept aside the true class of every record it sent (``traffic.read_truth``).
Where a human would fill in the exported CSV, this reviewer looks each captured case up in that
truth and saves the labels through the same validation and store as a human's file (``labels.py``).
"""

from __future__ import annotations

import pandas as pd

from mlops_kit.capture import ReviewSet, case_ids
from mlops_kit.config import Settings
from mlops_kit.labels import LABEL, LabelError, LabelResult, save_labels, validate_labels
from mlops_kit.simulator.shifts import TRUTH
from mlops_kit.simulator.traffic import read_truth
from mlops_kit.store.lock import holds_workspace_lock

SIMULATED_REVIEWER = "simulated-reviewer (simulator truth)"


@holds_workspace_lock("labelling")
def label_with_simulator_truth(
    settings: Settings, review: ReviewSet, *, track: bool = True
) -> LabelResult:
    """The demo's stand-in for a human reviewer: the true class the traffic simulator kept aside."""
    if review.version is None:
        raise LabelError("this review set is empty: there is nothing to label")
    truth = read_truth(settings)
    truth = truth.assign(case_id=case_ids(truth)) if len(truth) else truth.assign(case_id=[])
    known = dict(zip(truth["case_id"].astype(str), truth[TRUTH].astype(str), strict=True))
    ids = review.cases["case_id"].astype(str)
    labelled = pd.DataFrame({"case_id": ids, LABEL: ids.map(known)}).dropna()
    labelled = validate_labels(labelled, review)
    return save_labels(settings, review, labelled, SIMULATED_REVIEWER, track)
