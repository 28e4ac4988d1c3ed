"""Prediction logs for the monitoring tests: as `read_predictions` returns them, or in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from mlops_kit.simulator.shifts import TRUTH
from mlops_kit.simulator.traffic import draw_traffic
from mlops_kit.store.predictions.entry import LogEntry
from mlops_kit.store.predictions.writer import PredictionLog

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
BASE = ["id", "request_id", "created_at", "record_index", "model_name", "model_version"]
BASE += ["predicted", "confidence", "low_confidence"]


def fake_log(confident: int, unsure: int, season: pd.DataFrame, prefix: str = "r") -> pd.DataFrame:
    """A log as `read_predictions` returns it: confident clean records, then unsure shifted ones."""
    parts = [draw_traffic(season, confident, seed=1)] if confident else []
    if unsure:
        parts.append(draw_traffic(season, unsure, shift="calliper", seed=2))
    records = pd.concat(parts, ignore_index=True)
    n = len(records)
    confidence = np.r_[np.full(confident, 0.95), np.full(unsure, 0.55)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    log = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "request_id": [f"{prefix}{i // 25}" for i in range(n)],
            "created_at": [start + timedelta(minutes=i) for i in range(n)],
            "record_index": np.arange(n) % 25,
            "model_name": "penguins-classifier",
            "model_version": "1",
            "predicted": records[TRUTH],
            "confidence": confidence,
            "low_confidence": confidence < 0.7,
        }
    )
    features = [c for c in records.columns if c not in (TRUTH, "source_row")]
    for c in CLASSES:
        log[f"proba_{c}"] = np.where(log["predicted"] == c, confidence, (1 - confidence) / 2)
    return pd.concat([log, records[features]], axis=1)


def store_log(settings, frame: pd.DataFrame, threshold: float = 0.7) -> None:
    """Write a `fake_log` table to the store with the kit's writer, keeping its times.

    `threshold` is the one the API says it flagged with (fake_log's flags are confidence < 0.7).
    """
    features = [c for c in frame.columns if c not in BASE and not c.startswith("proba_")]
    writer = PredictionLog(settings.store)
    writer.start()
    for request_id, part in frame.groupby("request_id", sort=False):
        writer.submit(
            LogEntry.from_records(
                str(request_id), part["created_at"].iloc[0].to_pydatetime(),
                settings.model_name, "1",
                part[features].astype(object).where(part[features].notna(), None).to_dict("records"),
                part["predicted"].tolist(), part["confidence"].tolist(),
                part[[f"proba_{c}" for c in CLASSES]].to_numpy().tolist(), CLASSES,
                part["low_confidence"].tolist(), low_confidence_threshold=threshold,
            )
        )  # fmt: skip
    writer.close()
