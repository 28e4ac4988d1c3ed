"""The MLflow run of one batch: its input, the model, what was scored and rejected, and where to."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from mlops_kit.batch.local import Tally
    from mlops_kit.batch.reader import Source

KIND_TAG = "mlops_kit.kind"  # "batch" on every batch run
BATCH_ID_TAG = "mlops_kit.batch_id"
_TYPES = {"string": "string", "large_string": "string", "double": "double", "float": "float"}
_TYPES |= {"int64": "long", "int32": "integer", "bool": "boolean"}


def input_dataset(source: Source) -> object:
    """The input as an MLflow dataset: its path, a digest of its parts' names, sizes and times."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.types import ColSpec, Schema

    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in source.parts]
    digest = hashlib.sha256(repr(stats).encode()).hexdigest()[:10]
    schema = Schema(
        [ColSpec(_TYPES.get(str(f.type), "string"), f.name) for f in source.schema]  # type: ignore[arg-type]
    )
    return MetaDataset(
        LocalArtifactDatasetSource(str(source.path.resolve())),
        name=source.path.name,
        digest=digest,
        schema=schema,
    )


def confidence_figure(histogram: np.ndarray, bins: np.ndarray, threshold: float) -> Figure:
    """The scored rows' confidence, counted in bins, with the review threshold."""
    fig = plt.figure(figsize=(6, 3.8))
    plt.close(fig)
    ax = fig.subplots()
    ax.stairs(histogram, bins, fill=True, color="#4C72B0", alpha=0.85)
    ax.axvline(threshold, color="#C44E52", linestyle="--", label=f"limiar de revisão ({threshold})")
    ax.set_title("Confiança das previsões do lote")
    ax.set_xlabel("Confiança (probabilidade da classe prevista)")
    ax.set_ylabel("Número de registros")
    ax.legend()
    fig.tight_layout()
    return fig


def log_batch(
    source: Source,
    tally: Tally,
    bins: np.ndarray,
    threshold: float,
    seconds: float,
) -> None:
    """Log the active run's input dataset, counts, shares and confidence histogram."""
    import mlflow

    mlflow.log_input(input_dataset(source), context="batch")
    mlflow.log_metrics(
        {
            "rows_in": tally.rows_in,
            "rows_scored": tally.scored,
            "rows_rejected": tally.rejected,
            "low_confidence_share": tally.low_confidence_share,
            "mean_confidence": tally.mean_confidence if tally.scored else 0.0,
            "seconds": seconds,
            "rows_per_second": tally.rows_in / seconds if seconds > 0 else 0.0,
        }
    )
    mlflow.log_figure(
        confidence_figure(tally.histogram, bins, threshold), "batch/confidence_histogram.png"
    )
    mlflow.log_dict(
        {"bins": bins.tolist(), "counts": tally.histogram.tolist()},
        "batch/confidence_histogram.json",
    )
