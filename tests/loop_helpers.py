"""Helpers the loop's tests share: a log with low-confidence predictions and their kept-aside truth."""

from __future__ import annotations

import pandas as pd

from mlops_kit.capture import case_ids
from mlops_kit.simulator.shifts import TRUTH
from mlops_kit.simulator.traffic import draw_traffic, truth_dir, write_truth
from mlops_kit.store.predictions.window import read_predictions
from tests.helpers import log_predictions


def serve_batches(settings, season: pd.DataFrame, batches: int, seed: int) -> pd.DataFrame:
    """Log `batches` requests of 10 records as the API would; every third record is low-confidence.

    The truth of each record is kept the way the simulator keeps it; returns what was logged.
    """
    drawn = draw_traffic(season, batches * 10, shift="calliper", seed=seed)
    drawn["request_id"] = [f"s{seed}-b{i // 10}" for i in range(len(drawn))]
    drawn["record_index"] = [i % 10 for i in range(len(drawn))]
    features = [c for c in season.columns if c not in (TRUTH, "source_row")]
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
    path = truth_dir(settings) / f"s{seed}.csv"
    write_truth(path, drawn, features, {"run_id": f"s{seed}", "phase": "test"})
    return drawn


def low_confidence_ids(settings) -> set[str]:
    """The case ids of every prediction the API flagged as low-confidence."""
    log = read_predictions(settings)
    return set(case_ids(log[log["low_confidence"]]))
