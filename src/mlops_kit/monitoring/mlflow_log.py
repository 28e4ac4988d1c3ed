"""A monitoring report in MLflow: a `monitoring` run with its thresholds, metrics, tables and plots."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np

from mlops_kit import tracking
from mlops_kit.config import Settings
from mlops_kit.monitoring.report import MonitorReport


def log_report(
    report: MonitorReport, settings: Settings, figures: dict[str, object] | None = None
) -> str:
    """Log the report to MLflow as a `monitoring` run (metrics, tables, plots); return the run id."""
    tracking.configure(settings)
    with mlflow.start_run(run_name="monitoring") as run:
        mlflow.set_tags(
            {
                "pipeline": "monitoring",
                "source": report.source,  # api or batch traffic
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
                "low_confidence": report.low_confidence_text,
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
