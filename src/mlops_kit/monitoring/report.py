"""What monitoring found, as a report: the recent window's verdict and the history segment by segment.

``MonitorReport`` holds the numbers and shows them: a summary table, the drift and segment views,
a compact text for the command line and a JSON-ready dict. ``segments_table`` makes the history
(one row per segment, drift tested on each) and ``class_mix`` the predicted classes beside the
training data's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_kit.confidence import PROBA_PREFIX
from mlops_kit.monitoring import segments as log_segments
from mlops_kit.monitoring.drift import DRIFT_COLUMNS, drift_table
from mlops_kit.monitoring.reference import Reference


def thresholds_text(thresholds: list[float]) -> str:
    """Low-confidence thresholds as the report prints them: '0.70', or '0.55 / 0.70'."""
    return " / ".join(f"{t:.2f}" for t in thresholds)


@dataclass
class MonitorReport:
    """What monitoring found: the recent window's verdict, and the history segment by segment."""

    predictions: int
    recent: int
    model_versions: list[str]
    reference_data_version: str | None
    # the thresholds the API flagged the window's predictions with, as it logged them (the
    # monitor's own setting only where the log holds none: rows logged before it kept them)
    low_confidence: list[float]
    low_confidence_share_threshold: float
    drift_p_value: float
    drift_psi: float
    mean_confidence: float
    low_confidence_share: float
    class_mix: pd.DataFrame
    drift: pd.DataFrame
    segments: pd.DataFrame
    segment_drift: pd.DataFrame
    retrain_due: bool
    reasons: list[str] = field(default_factory=list)
    recent_tested: int = 0  # predictions of the recent window its drift was tested on
    source: str = "api"  # what was monitored: the API's log, or the batches' outputs

    @property
    def sampled(self) -> bool:
        """True when drift was tested on every k-th prediction of a long window or segment."""
        short = (self.segments["tested"] == self.segments["predictions"]).all()
        return not short or self.recent_tested < self.recent

    @property
    def drifted(self) -> list[str]:
        """Features that drifted in the recent window."""
        return self.drift.loc[self.drift["drift"], "feature"].tolist()

    @property
    def low_confidence_text(self) -> str:
        """The API's threshold(s) as the report prints them: '0.70', or '0.55 / 0.70'."""
        return thresholds_text(self.low_confidence)

    @property
    def verdict(self) -> str:
        """One line: retraining due (and why) or not."""
        if self.predictions == 0:
            return "nothing to monitor: the prediction log is empty"
        if self.retrain_due:
            return "retraining due: " + "; ".join(self.reasons)
        return "no retraining needed: confidence and inputs look like the training data"

    def summary(self) -> pd.DataFrame:
        """A two-column table of the recent window's numbers and the verdict."""
        rows = [
            ("traffic", self.source),
            ("predictions (all / recent window)", f"{self.predictions} / {self.recent}"),
            ("model version(s) in the window", ", ".join(self.model_versions) or "-"),
            ("reference data version", self.reference_data_version or "-"),
            ("mean confidence", f"{self.mean_confidence:.3f}"),
            (
                f"low-confidence share (< {self.low_confidence_text})",
                f"{self.low_confidence_share:.3f} (limit {self.low_confidence_share_threshold:.2f})",
            ),
            ("classes predicted (in training)", self._mix()),
            ("drifted features", ", ".join(self.drifted) or "none"),
            ("retraining due", "yes" if self.retrain_due else "no"),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])

    def _mix(self) -> str:
        rows = self.class_mix.itertuples()
        return ", ".join(f"{r[1]} {r[2]:.0%} ({r[3]:.0%})" for r in rows) or "-"

    def drift_view(self) -> pd.DataFrame:
        """The recent window's drift table, rounded for reading."""
        out = self.drift.copy()
        out["statistic"] = out["statistic"].round(3)
        out["p_value"] = out["p_value"].map(lambda p: f"{p:.1e}" if np.isfinite(p) else "-")
        out["psi"] = out["psi"].round(2)
        return out

    def segment_view(self) -> pd.DataFrame:
        """The history, one row per segment, rounded for reading."""
        columns = [
            "segment",
            "model_version",
            "predictions",
            "mean_confidence",
            "low_confidence_share",
            "drifted",
        ]
        return self.segments[columns].round({"mean_confidence": 3, "low_confidence_share": 3})

    def text(self) -> str:
        """A compact report for the command line."""
        lines = [self.summary().to_string(index=False, header=False), ""]
        if self.predictions:
            lines += [self.segment_view().to_string(index=False), ""]
            lines += [self.drift_view().to_string(index=False), ""]
        if self.sampled:
            sample, recent = log_segments.SAMPLE_ROWS, log_segments.RECENT_ROWS
            lines += [
                f"drift tested on every k-th prediction: at most {sample} per segment and "
                f"{recent} in the recent window (counts and shares use every prediction)",
                "",
            ]
        lines.append(self.verdict)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (tables as lists of records)."""

        def records(frame: pd.DataFrame) -> list[dict]:
            return json.loads(frame.to_json(orient="records", date_format="iso"))

        return {
            "source": self.source,
            "predictions": self.predictions,
            "recent": self.recent,
            "model_versions": self.model_versions,
            "reference_data_version": self.reference_data_version,
            "thresholds": {
                "low_confidence": self.low_confidence,
                "low_confidence_share": self.low_confidence_share_threshold,
                "drift_p_value": self.drift_p_value,
                "drift_psi": self.drift_psi,
            },
            "mean_confidence": self.mean_confidence,
            "low_confidence_share": self.low_confidence_share,
            "class_mix": records(self.class_mix),
            "drift": records(self.drift),
            "segments": records(self.segments),
            "recent_tested": self.recent_tested,
            "retrain_due": self.retrain_due,
            "reasons": self.reasons,
        }


def classes_of(predictions: pd.DataFrame) -> list[str]:
    """The classes the log has probabilities for."""
    return [c[len(PROBA_PREFIX) :] for c in predictions.columns if c.startswith(PROBA_PREFIX)]


def class_mix(produced: dict[str, int], reference: Reference, classes: list[str]) -> pd.DataFrame:
    """Each class's share of the predictions beside its share of the training data."""
    total = sum(produced.values())
    trained = (
        reference.frame[reference.target].value_counts(normalize=True)
        if reference.target in reference.frame
        else pd.Series()
    )
    names = sorted(set(classes) | set(produced) | set(trained.index))
    return pd.DataFrame(
        {
            "class": names,
            "predicted_share": [
                round(produced.get(c, 0) / total, 3) if total else 0.0 for c in names
            ],
            "training_share": [round(float(trained.get(c, 0.0)), 3) for c in names],
        }
    )


def version_key(version: str) -> tuple[int, str]:
    """A sort key: numbered versions in number order, others after them."""
    return (int(version), version) if version.isdigit() else (10**9, version)


SEGMENT_COLUMNS = [
    "segment",
    "first_id",
    "last_id",
    "start",
    "model_version",
    "predictions",
    "mean_confidence",
    "p10_confidence",
    "low_confidence_share",
    "tested",  # the predictions drift and the 10th percentile were computed on
    "drifted",
]


def segments_table(
    parts: list[log_segments.Part], reference: Reference, thresholds: dict[str, float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The history (one row per segment) and the drift table of every segment (long format)."""
    if not parts:
        return pd.DataFrame(columns=SEGMENT_COLUMNS), pd.DataFrame(
            columns=["segment", *DRIFT_COLUMNS]
        )
    rows, drifts = [], []
    for number, part in enumerate(parts, start=1):
        totals, sample = part.totals, part.rows
        table = drift_table(
            reference.frame, sample, reference.numeric, reference.categorical, **thresholds
        )
        drifts.append(table.assign(segment=number))
        rows.append(
            {
                "segment": number,
                "first_id": totals.first_id,
                "last_id": totals.last_id,
                "start": None if totals.start is None else pd.Timestamp(totals.start),
                "model_version": ", ".join(sorted(totals.versions, key=version_key)),
                "predictions": totals.predictions,
                "mean_confidence": totals.confidence_sum / totals.predictions,
                "p10_confidence": float(sample["confidence"].quantile(0.1)),
                "low_confidence_share": totals.low_confidence / totals.predictions,
                "tested": len(sample),
                "drifted": ", ".join(table.loc[table["drift"], "feature"]) or "-",
            }
        )
    segment_drift = pd.concat(drifts, ignore_index=True)[["segment", *DRIFT_COLUMNS]]
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS), segment_drift
