"""Monitoring from the prediction log: confidence, low-confidence share, class mix, input drift.

Drift compares each input feature in production with the data the serving model was trained on
(its data version's training split). A feature drifts when the difference is both *real* and
*large*: the two-sample test says it is unlikely to be chance (Kolmogorov–Smirnov for numbers,
chi-square for categories: p-value below ``drift_p_value``) **and** the Population Stability
Index says it is big enough to matter (PSI above ``drift_psi``). The test alone flags trivial
differences in big windows; PSI alone is noisy in small ones.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from scipy import stats

from mlops_kit import tracking
from mlops_kit.config import Settings
from mlops_kit.data import prepare
from mlops_kit.model import PROBA_PREFIX
from mlops_kit.store import datasets

MISSING = "<missing>"  # a category of its own: a field production stops sending is drift too
PSI_BINS = 10


# --- statistics ------------------------------------------------------------------------------


def _shares(counts: np.ndarray) -> np.ndarray:
    # half a count per bin, so that an empty bin in a small window does not dominate the index
    return (counts + 0.5) / (counts.sum() + 0.5 * len(counts))


def _psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    r, c = _shares(ref_counts), _shares(cur_counts)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_bins(reference: pd.Series, bins: int = PSI_BINS) -> np.ndarray:
    """Inner bin edges: the reference's quantiles (each bin holds ~1/bins of the reference)."""
    values = reference.dropna().to_numpy(dtype=float)
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def psi_numeric(reference: pd.Series, current: pd.Series, bins: int = PSI_BINS) -> float:
    """Population Stability Index of a numeric feature, on the reference's quantile bins."""
    edges = numeric_bins(reference, bins)
    ref = reference.dropna().to_numpy(dtype=float)
    cur = current.dropna().to_numpy(dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    size = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=size)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=size)
    return _psi(ref_counts, cur_counts)


def _category_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    ref = reference.astype(object).where(reference.notna(), MISSING).astype(str)
    cur = current.astype(object).where(current.notna(), MISSING).astype(str)
    categories = sorted(set(ref) | set(cur))
    ref_counts = ref.value_counts().reindex(categories, fill_value=0).to_numpy()
    cur_counts = cur.value_counts().reindex(categories, fill_value=0).to_numpy()
    return ref_counts, cur_counts


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """Population Stability Index of a categorical feature (missing is a category)."""
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    return _psi(*_category_counts(reference, current))


def ks_test(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov test: (statistic D, p-value)."""
    ref, cur = reference.dropna(), current.dropna()
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float))
    return float(result.statistic), float(result.pvalue)


def chi2_test(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Chi-square test that reference and current share one category mix: (statistic, p-value)."""
    if len(reference) == 0 or len(current) == 0:
        return float("nan"), float("nan")
    ref_counts, cur_counts = _category_counts(reference, current)
    if len(ref_counts) < 2:
        return 0.0, 1.0  # one category on both sides: nothing can differ
    result = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]))
    return float(result.statistic), float(result.pvalue)


DRIFT_COLUMNS = ["feature", "kind", "test", "statistic", "p_value", "psi", "drift"]


def drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    p_value: float,
    psi: float,
) -> pd.DataFrame:
    """One row per feature: test, statistic, p-value, PSI and whether it drifted (both thresholds)."""
    rows = []
    for name in [*numeric, *categorical]:
        ref = reference[name] if name in reference else pd.Series(dtype=object)
        cur = current[name] if name in current else pd.Series([None] * len(current), dtype=object)
        if name in numeric:
            statistic, p = ks_test(ref, cur)
            index, test, kind = psi_numeric(ref, cur), "ks", "numeric"
        else:
            statistic, p = chi2_test(ref, cur)
            index, test, kind = psi_categorical(ref, cur), "chi2", "categorical"
        drifted = bool(np.isfinite(p) and p < p_value and np.isfinite(index) and index > psi)
        rows.append((name, kind, test, statistic, p, index, drifted))
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


# --- the reference the serving model was trained on --------------------------------------------


@dataclass
class Reference:
    """The training data a model version learnt from: the baseline production is compared to."""

    data_version: str | None
    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    target: str

    @property
    def features(self) -> list[str]:
        """All features, numeric first."""
        return [*self.numeric, *self.categorical]


def reference_for(settings: Settings, model_version: str | None = None) -> Reference:
    """The training split of the data version a model version was trained on (tag `data_version`)."""
    data_version = None
    has_store = not settings.embedded or settings.mlflow_db.exists()
    if model_version is not None and has_store:
        try:
            mv = tracking.client(settings).get_model_version(settings.model_name, model_version)
            data_version = mv.tags.get("data_version")
        except Exception:  # noqa: BLE001 - no registry (yet): fall back to the default data
            data_version = None
    if data_version and datasets.has_version(settings, data_version):
        prepared = datasets.load_version(settings, data_version)
    else:
        prepared = prepare(settings, write=False)
    return Reference(
        prepared.card.data_version,
        prepared.train,
        prepared.spec.numeric,
        prepared.spec.categorical,
        prepared.spec.target,
    )


# --- segments of the log and the report ------------------------------------------------------


def segment_ids(predictions: pd.DataFrame, segment: int | str) -> pd.Series:
    """Number the log's rows by segment: every `segment` predictions, or per time window ('1h')."""
    if isinstance(segment, int) or str(segment).isdigit():
        size = int(segment)
        if size < 1:
            raise ValueError("a segment needs at least one prediction")
        return pd.Series(np.arange(len(predictions)) // size + 1, index=predictions.index)
    try:
        windows = pd.to_datetime(predictions["created_at"], utc=True).dt.floor(str(segment))
    except ValueError as exc:
        raise ValueError(
            f"segment must be a number of predictions or a time window like '1h', not '{segment}'"
        ) from exc
    codes = {w: i + 1 for i, w in enumerate(sorted(windows.unique()))}
    return windows.map(codes).astype(int)


def classes_of(predictions: pd.DataFrame) -> list[str]:
    """The classes the log has probabilities for."""
    return [c[len(PROBA_PREFIX) :] for c in predictions.columns if c.startswith(PROBA_PREFIX)]


@dataclass
class MonitorReport:
    """What monitoring found: the recent window's verdict, and the history segment by segment."""

    predictions: int
    recent: int
    model_versions: list[str]
    reference_data_version: str | None
    low_confidence: float
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

    @property
    def drifted(self) -> list[str]:
        """Features that drifted in the recent window."""
        return self.drift.loc[self.drift["drift"], "feature"].tolist()

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
            ("predictions (all / recent window)", f"{self.predictions} / {self.recent}"),
            ("model version(s) in the window", ", ".join(self.model_versions) or "-"),
            ("reference data version", self.reference_data_version or "-"),
            ("mean confidence", f"{self.mean_confidence:.3f}"),
            (
                f"low-confidence share (< {self.low_confidence:.2f})",
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
        lines.append(self.verdict)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (tables as lists of records)."""

        def records(frame: pd.DataFrame) -> list[dict]:
            return json.loads(frame.to_json(orient="records", date_format="iso"))

        return {
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
            "retrain_due": self.retrain_due,
            "reasons": self.reasons,
        }


def _class_mix(recent: pd.DataFrame, reference: Reference, classes: list[str]) -> pd.DataFrame:
    produced = recent["predicted"].value_counts(normalize=True) if len(recent) else pd.Series()
    trained = (
        reference.frame[reference.target].value_counts(normalize=True)
        if reference.target in reference.frame
        else pd.Series()
    )
    names = sorted(set(classes) | set(produced.index) | set(trained.index))
    return pd.DataFrame(
        {
            "class": names,
            "predicted_share": [round(float(produced.get(c, 0.0)), 3) for c in names],
            "training_share": [round(float(trained.get(c, 0.0)), 3) for c in names],
        }
    )


def monitor(
    settings: Settings,
    predictions: pd.DataFrame | None = None,
    *,
    since: datetime | None = None,
    last: int | None = None,
    recent: int | None = None,
    segment: int | str = 25,
    reference: Reference | None = None,
) -> MonitorReport:
    """Monitor the prediction log (or a given slice of it) against the serving model's training data."""
    from mlops_kit.store.predictions import read_predictions

    log = read_predictions(settings, since=since, last=last) if predictions is None else predictions
    log = log.reset_index(drop=True)
    window = settings.monitor_window if recent is None else recent
    current = log.tail(window) if window else log
    versions = sorted(set(current.get("model_version", pd.Series(dtype=str)).astype(str)), key=_num)
    if reference is None:
        # the version that answered most of the window: its training data is the baseline
        served = current["model_version"].astype(str).value_counts() if len(current) else None
        reference = reference_for(settings, str(served.index[0]) if served is not None else None)
    thresholds = {"p_value": settings.drift_p_value, "psi": settings.drift_psi}
    drift = drift_table(
        reference.frame, current, reference.numeric, reference.categorical, **thresholds
    )
    segments, segment_drift = _segments(log, segment, reference, thresholds)
    mean_conf = float(current["confidence"].mean()) if len(current) else float("nan")
    low_share = float(current["low_confidence"].mean()) if len(current) else 0.0
    reasons = []
    if len(current) and low_share > settings.low_confidence_share:
        reasons.append(
            f"low-confidence share {low_share:.2f} is above {settings.low_confidence_share:.2f} "
            f"(confidence < {settings.low_confidence:.2f})"
        )
    drifted = drift.loc[drift["drift"], "feature"].tolist() if len(current) else []
    if drifted:
        reasons.append(
            f"input drift in {', '.join(drifted)} (p < {settings.drift_p_value:g} "
            f"and PSI > {settings.drift_psi:g})"
        )
    return MonitorReport(
        predictions=len(log),
        recent=len(current),
        model_versions=versions,
        reference_data_version=reference.data_version,
        low_confidence=settings.low_confidence,
        low_confidence_share_threshold=settings.low_confidence_share,
        drift_p_value=settings.drift_p_value,
        drift_psi=settings.drift_psi,
        mean_confidence=mean_conf,
        low_confidence_share=low_share,
        class_mix=_class_mix(current, reference, classes_of(log)),
        drift=drift,
        segments=segments,
        segment_drift=segment_drift,
        retrain_due=bool(reasons),
        reasons=reasons,
    )


def _num(version: str) -> tuple[int, str]:
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
    "drifted",
]


def _segments(
    log: pd.DataFrame, segment: int | str, reference: Reference, thresholds: dict[str, float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if log.empty:
        return pd.DataFrame(columns=SEGMENT_COLUMNS), pd.DataFrame(
            columns=["segment", *DRIFT_COLUMNS]
        )
    ids = segment_ids(log, segment)
    rows, drifts = [], []
    for number, part in log.groupby(ids, sort=True):
        table = drift_table(
            reference.frame, part, reference.numeric, reference.categorical, **thresholds
        )
        drifts.append(table.assign(segment=number))
        rows.append(
            {
                "segment": int(number),
                "first_id": int(part["id"].min()) if "id" in part else None,
                "last_id": int(part["id"].max()) if "id" in part else None,
                "start": part["created_at"].min() if "created_at" in part else None,
                "model_version": ", ".join(
                    sorted(set(part["model_version"].astype(str)), key=_num)
                ),
                "predictions": len(part),
                "mean_confidence": float(part["confidence"].mean()),
                "p10_confidence": float(part["confidence"].quantile(0.1)),
                "low_confidence_share": float(part["low_confidence"].mean()),
                "drifted": ", ".join(table.loc[table["drift"], "feature"]) or "-",
            }
        )
    segment_drift = pd.concat(drifts, ignore_index=True)[["segment", *DRIFT_COLUMNS]]
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS), segment_drift


def log_report(
    report: MonitorReport, settings: Settings, figures: dict[str, object] | None = None
) -> str:
    """Log the report to MLflow as a `monitoring` run (metrics, tables, plots); return the run id."""
    tracking.configure(settings)
    with mlflow.start_run(run_name="monitoring") as run:
        mlflow.set_tags(
            {
                "pipeline": "monitoring",
                "retrain_due": str(report.retrain_due).lower(),
                "model_versions": ",".join(report.model_versions),
                "reference_data_version": report.reference_data_version or "",
                "verdict": report.verdict[:500],
                **tracking.invocation_tags(),
            }
        )
        mlflow.log_params(
            {
                "recent_window": report.recent,
                "low_confidence": report.low_confidence,
                "low_confidence_share_threshold": report.low_confidence_share_threshold,
                "drift_p_value": report.drift_p_value,
                "drift_psi": report.drift_psi,
            }
        )
        metrics = {
            "predictions": float(report.predictions),
            "recent_mean_confidence": report.mean_confidence,
            "recent_low_confidence_share": report.low_confidence_share,
            "drifted_features": float(len(report.drifted)),
        }
        for row in report.drift.itertuples():
            metrics[f"psi_{row.feature}"] = float(row.psi)
            metrics[f"p_value_{row.feature}"] = float(row.p_value)
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "monitoring_report.json"
            path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
            mlflow.log_artifact(str(path))
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"plots/{name}")
    return run.info.run_id
