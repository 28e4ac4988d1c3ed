"""`mlops-kit compare`: the served model and the shadow, on the same requests, side by side.

Reads the store: each answered prediction (``predictions``) joined with the shadow's answer to the
same record (``shadow_predictions``: same request id and position). Over a window (since a time,
or the newest N): how many were compared, how often the two agree, each one's mean confidence and
low-confidence share, and — where a reviewer's label came back for the case — each one's accuracy.
Counts and sums come from the database; only labelled cases are read row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from mlops_kit import registry
from mlops_kit.config import Settings
from mlops_kit.labels import LABEL, labelled_cases
from mlops_kit.store.db import exists, make_engine
from mlops_kit.store.predictions.entry import predictions, shadow_predictions

LABELLED_CHUNK = 500  # request ids asked for at a time (SQLite takes a bounded number of values)
SHADOW_MIN_PREDICTIONS = 100  # live predictions a version scores in shadow before promotion


@dataclass
class Side:
    """One model's figures over the compared predictions."""

    role: str  # "served" or "shadow"
    versions: list[str]
    mean_confidence: float
    low_confidence_share: float
    accuracy: float | None  # on the labelled cases; None where no label came back


@dataclass
class Comparison:
    """The served model against the shadow over one window."""

    requests: int
    predictions: int
    agreement: float
    labelled: int
    sides: list[Side]

    def table(self) -> pd.DataFrame:
        """One row per model: versions, mean confidence, low-confidence share, accuracy."""
        rows = [
            {
                "model": side.role,
                "versions": ", ".join(side.versions),
                "mean_confidence": round(side.mean_confidence, 3),
                "low_confidence_share": round(side.low_confidence_share, 3),
                "accuracy": "-" if side.accuracy is None else round(side.accuracy, 3),
            }
            for side in self.sides
        ]
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """What was compared, and how often the two agreed."""
        rows = [
            ("requests compared", str(self.requests)),
            ("predictions compared", str(self.predictions)),
            ("agreement", f"{self.agreement:.3f}" if self.predictions else "-"),
            ("labelled cases", str(self.labelled)),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])


def _joined(since: datetime | None, last: int | None) -> sa.Subquery:
    served, shadow = predictions.alias("served"), shadow_predictions.alias("shadow")
    query = sa.select(
        served.c.id,
        served.c.request_id,
        served.c.record_index,
        served.c.model_version.label("served_version"),
        served.c.predicted.label("served_predicted"),
        served.c.confidence.label("served_confidence"),
        served.c.low_confidence.label("served_low"),
        shadow.c.model_version.label("shadow_version"),
        shadow.c.predicted.label("shadow_predicted"),
        shadow.c.confidence.label("shadow_confidence"),
        shadow.c.low_confidence.label("shadow_low"),
    ).join(
        shadow,
        (served.c.request_id == shadow.c.request_id)
        & (served.c.record_index == shadow.c.record_index),
    )
    if since is not None:  # a time as the log stores it: UTC
        when = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        query = query.where(served.c.created_at >= when)
    if last is not None:
        query = query.order_by(served.c.id.desc()).limit(last)
    return query.subquery()


def compare(
    settings: Settings, since: datetime | None = None, last: int | None = None
) -> Comparison:
    """Compare the served answers with the shadow's over a window of the log."""
    if not exists(settings.store):
        return Comparison(0, 0, 0.0, 0, [])
    engine = make_engine(settings.store)
    try:
        if not sa.inspect(engine).has_table(shadow_predictions.name):
            return Comparison(0, 0, 0.0, 0, [])
        pairs = _joined(since, last)
        with engine.connect() as conn:
            totals = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(sa.distinct(pairs.c.request_id)),
                    sa.func.sum(
                        sa.case((pairs.c.served_predicted == pairs.c.shadow_predicted, 1), else_=0)
                    ),
                    sa.func.avg(pairs.c.served_confidence),
                    sa.func.avg(sa.cast(pairs.c.served_low, sa.Integer)),
                    sa.func.avg(pairs.c.shadow_confidence),
                    sa.func.avg(sa.cast(pairs.c.shadow_low, sa.Integer)),
                )
            ).one()
            versions = {
                role: sorted(
                    {str(v) for (v,) in conn.execute(sa.select(column).distinct())}, key=_number
                )
                for role, column in (
                    ("served", pairs.c.served_version),
                    ("shadow", pairs.c.shadow_version),
                )
            }
        labelled, accuracy = _accuracy(settings, engine, pairs)
    finally:
        engine.dispose()
    n = int(totals[0] or 0)
    if n == 0:
        return Comparison(0, 0, 0.0, 0, [])
    sides = [
        Side("served", versions["served"], float(totals[3]), float(totals[4]), accuracy["served"]),
        Side("shadow", versions["shadow"], float(totals[5]), float(totals[6]), accuracy["shadow"]),
    ]
    return Comparison(int(totals[1]), n, float(totals[2]) / n, labelled, sides)


def _number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (10**9, version)


def _accuracy(
    settings: Settings, engine: sa.Engine, pairs: sa.Subquery
) -> tuple[int, dict[str, float | None]]:
    """How many compared cases a reviewer labelled, and each model's accuracy on them."""
    labels = labelled_cases(settings)
    none: dict[str, float | None] = {"served": None, "shadow": None}
    if labels.empty:
        return 0, none
    truth = dict(zip(labels["case_id"].astype(str), labels[LABEL].astype(str), strict=True))
    request_ids = sorted({case.rsplit("#", 1)[0] for case in truth})
    columns = (pairs.c.request_id, pairs.c.record_index)
    answers = (pairs.c.served_predicted, pairs.c.shadow_predicted)
    rows = []
    with engine.connect() as conn:
        for start in range(0, len(request_ids), LABELLED_CHUNK):  # a bounded IN (...) each time
            chunk = request_ids[start : start + LABELLED_CHUNK]
            for r in conn.execute(sa.select(*columns, *answers).where(columns[0].in_(chunk))):
                case = f"{r.request_id}#{r.record_index}"
                if case in truth:
                    rows.append((truth[case], r.served_predicted, r.shadow_predicted))
    if not rows:
        return 0, none
    return len(rows), {
        "served": sum(label == served for label, served, _ in rows) / len(rows),
        "shadow": sum(label == shadow for label, _, shadow in rows) / len(rows),
    }


def shadowed(settings: Settings, version: str) -> int:
    """How many served predictions a version has scored in shadow (0 where it never ran so)."""
    if not exists(settings.store):
        return 0
    engine = make_engine(settings.store)
    try:
        if not sa.inspect(engine).has_table(shadow_predictions.name):
            return 0
        query = sa.select(sa.func.count()).where(shadow_predictions.c.model_version == version)
        with engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)
    finally:
        engine.dispose()


def promote_challenger(
    settings: Settings, since: datetime | None = None, minimum: int = SHADOW_MIN_PREDICTIONS
) -> registry.AliasMove:
    """Give `champion` to the version that passed the gate and scored live traffic in shadow.

    Refused (ValueError, saying what to do) where there is no `challenger`, where it did not pass
    the gate, or where it scored fewer than ``minimum`` live predictions in shadow; the reason
    recorded on the version holds what the shadow showed over the window (``since``).
    """
    version = registry.alias_version(settings, registry.CHALLENGER)
    if version is None:
        raise ValueError("there is no challenger: retrain with --shadow-first first")
    tags = registry.version_tags(settings, version)
    if tags.get("gate") != "passed":
        raise ValueError(f"challenger v{version} did not pass the gate: {tags.get('gate_reason')}")
    seen = shadowed(settings, version)
    if seen < minimum:
        raise ValueError(
            f"challenger v{version} scored {seen} live predictions in shadow, fewer than "
            f"{minimum}: serve with mlops-kit serve --shadow challenger and wait for traffic"
        )
    shown = compare(settings, since=since)
    sides = {side.role: side for side in shown.sides}
    reason = f"scored {seen} live predictions in shadow"
    if shown.predictions:
        reason += (
            f"; agreement {shown.agreement:.2f}, mean confidence "
            f"{sides['shadow'].mean_confidence:.2f} against {sides['served'].mean_confidence:.2f}"
        )
    move = registry.promote(settings, version, reason, by="shadow")
    registry.clear_alias(settings, registry.CHALLENGER)
    return move
