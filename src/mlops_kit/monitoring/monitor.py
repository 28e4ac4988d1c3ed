"""`monitor`: read the log's window, compare it with the serving model's training data, report.

Three steps, each below: read the window (from the store by SQL, or from a given table), choose
the reference (the training data of the version that answered most of the window), and make the
report (drift of the recent window and of every segment, the low-confidence share, the verdict).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from mlops_kit.config import Settings
from mlops_kit.monitoring.batch_window import read_batches
from mlops_kit.monitoring.drift import drift_table
from mlops_kit.monitoring.reference import Reference, reference_for
from mlops_kit.monitoring.report import (
    MonitorReport,
    class_mix,
    classes_of,
    segments_table,
    thresholds_text,
    version_key,
)
from mlops_kit.monitoring.segments import (
    RECENT_ROWS,
    Window,
    every,
    frame_parts,
    frame_totals,
    segment_step,
    store_parts,
)
from mlops_kit.store.predictions.window import LogWindow, Span, Totals

SOURCES = ("api", "batch")  # the API's prediction log, or the outputs of batch scoring


def read_store(
    settings: Settings, since: datetime | None, last: int | None, recent: int, segment: int | str
) -> Window:
    """The window (``since``, ``last``) of the store's log, read by SQL with bounded rows."""
    with LogWindow(settings, since=since, last=last) as log:
        count = log.count()
        span = Span(first_id=log.id_from_end(recent) if recent else None)
        totals = log.totals(span)
        current = log.rows(span, every=every(totals.predictions, RECENT_ROWS))
        produced = log.class_counts(span)
        parts = store_parts(log, segment, count) if count else []
        thresholds = log.thresholds(span)
    return Window(count, totals, current, produced, parts, thresholds)


def read_table(predictions: pd.DataFrame, recent: int, segment: int | str) -> Window:
    """A given slice of the log, cut the same way by pandas."""
    frame = predictions.reset_index(drop=True)
    newest = frame.tail(recent) if recent else frame
    produced = newest.get("predicted", pd.Series(dtype=str)).astype(str).value_counts()
    stored = newest.get("low_confidence_threshold", pd.Series(dtype=float)).dropna()
    return Window(
        count=len(frame),
        totals=frame_totals(newest),
        current=newest.iloc[:: every(len(newest), RECENT_ROWS)],
        produced={str(k): int(v) for k, v in produced.items()},
        parts=frame_parts(frame, segment) if len(frame) else [],
        thresholds=sorted(float(t) for t in stored.unique()),
    )


def served_reference(settings: Settings, totals: Totals) -> Reference:
    """The training data of the version that answered most of the window: the baseline."""
    versions = sorted(totals.versions, key=version_key)
    served = max(versions, key=lambda v: totals.versions[v]) if versions else None
    return reference_for(settings, served)


def retrain_reasons(
    settings: Settings, totals: Totals, drift: pd.DataFrame, low_share: float, flagged_below: str
) -> list[str]:
    """Why retraining is due: too many low-confidence answers, input drift (none: not due)."""
    if not totals.predictions:
        return []
    reasons = []
    if low_share > settings.low_confidence_share:
        reasons.append(
            f"low-confidence share {low_share:.2f} is above {settings.low_confidence_share:.2f} "
            f"(confidence < {flagged_below})"
        )
    drifted = drift.loc[drift["drift"], "feature"].tolist()
    if drifted:
        reasons.append(
            f"input drift in {', '.join(drifted)} (p < {settings.drift_p_value:g} "
            f"and PSI > {settings.drift_psi:g})"
        )
    return reasons


def monitor(
    settings: Settings,
    predictions: pd.DataFrame | None = None,
    *,
    since: datetime | None = None,
    last: int | None = None,
    recent: int | None = None,
    segment: int | str = 25,
    reference: Reference | None = None,
    source: str = "api",
) -> MonitorReport:
    """Monitor the prediction log (or a given slice of it) against the serving model's training data.

    From the store, the window (``since``, ``last``) is read by SQL: counts and sums in the
    database, rows only for at most ``MAX_SEGMENTS`` segments of at most ``SAMPLE_ROWS`` each and
    the recent window; so time and memory do not grow with the log. ``source="batch"`` reads the
    batch traffic instead: the scored outputs of ``mlops-kit score``, streamed where they lie.
    """
    segment_step(segment)  # a wrong segment fails before anything is read
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not '{source}'")
    size = settings.monitor_window if recent is None else recent
    if predictions is None and source == "batch":
        window = read_batches(settings, since, last, size, segment)
    elif predictions is None:
        window = read_store(settings, since, last, size, segment)
    else:
        window = read_table(predictions, size, segment)
    totals = window.totals
    if reference is None:
        reference = served_reference(settings, totals)
    thresholds = {"p_value": settings.drift_p_value, "psi": settings.drift_psi}
    drift = drift_table(
        reference.frame, window.current, reference.numeric, reference.categorical, **thresholds
    )
    segments, segment_drift = segments_table(window.parts, reference, thresholds)
    n = totals.predictions
    low_share = totals.low_confidence / n if n else 0.0
    # the share counts the API's own flags: the report names the threshold(s) it used
    flagged_below = window.thresholds or [settings.low_confidence]
    reasons = retrain_reasons(settings, totals, drift, low_share, thresholds_text(flagged_below))
    frames = [window.current, *(p.rows for p in window.parts)]
    classes = list(dict.fromkeys(c for f in frames for c in classes_of(f)))
    return MonitorReport(
        predictions=window.count,
        recent=n,
        model_versions=sorted(totals.versions, key=version_key),
        reference_data_version=reference.data_version,
        low_confidence=flagged_below,
        low_confidence_share_threshold=settings.low_confidence_share,
        drift_p_value=settings.drift_p_value,
        drift_psi=settings.drift_psi,
        mean_confidence=totals.confidence_sum / n if n else float("nan"),
        low_confidence_share=low_share,
        class_mix=class_mix(window.produced, reference, classes),
        drift=drift,
        segments=segments,
        segment_drift=segment_drift,
        retrain_due=bool(reasons),
        reasons=reasons,
        recent_tested=len(window.current),
        source=source,
    )
