"""Score a table with the champion: one call, one MLflow run, one output and its rejects.

``score_table`` checks the output can be written and the input can be read, loads the model once
(``models:/<name>@<alias>`` or a model URI, through ``scoring.loader`` as the API does), and runs an
engine inside an MLflow run. Engines are looked up in ``ENGINES`` by name: ``local`` streams the
input in this process; another engine (Spark) registers itself there with the same signature.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_kit.batch import columns, local, outputs, reader, record, validate
from mlops_kit.batch import spark as spark_engine  # pyspark itself is imported when it scores
from mlops_kit.config import CHAMPION, Settings
from mlops_kit.scoring import loader as loader_module
from mlops_kit.scoring.loader import Champion, ChampionLoader
from mlops_kit.store import batches

DEFAULT_CHUNK_ROWS = 200_000

# An engine scores a whole source into the temporary outputs and counts what it did:
# engine(champion, source, outputs, *, threshold=..., chunk_rows=..., progress=...) -> Tally
Engine = Callable[..., local.Tally]
ENGINES: dict[str, Engine] = {"local": local.score, "spark": spark_engine.score}


class UnknownEngine(ValueError):
    """An engine name the kit does not have (or whose extra is not installed)."""


class NoModel(Exception):
    """The model to score with could not be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class BatchResult:
    """What one batch did and where it wrote."""

    batch_id: str
    source: Path
    out: Path
    rejects: Path
    engine: str
    model_name: str
    model_version: str
    rows_in: int
    scored: int
    rejected: int
    low_confidence_share: float
    seconds: float
    run_id: str

    def table(self) -> pd.DataFrame:
        """What the batch did, as a two-column table (files by name)."""
        rows = [
            ("batch", self.batch_id),
            ("model", f"{self.model_name} v{self.model_version}"),
            ("engine", self.engine),
            ("rows in", str(self.rows_in)),
            ("scored", str(self.scored)),
            ("rejected", str(self.rejected)),
            ("low-confidence share", f"{self.low_confidence_share:.1%}"),
            ("scored file", self.out.name),
            ("rejects file", self.rejects.name),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])

    def summary(self) -> str:
        """A few lines for a person."""
        rate = self.rows_in / self.seconds if self.seconds else 0.0
        return "\n".join(
            [
                f"batch {self.batch_id}: {self.model_name} v{self.model_version}, "
                f"engine {self.engine}",
                f"rows in {self.rows_in:,}  scored {self.scored:,}  rejected {self.rejected:,}  "
                f"low confidence {self.low_confidence_share:.1%}",
                f"scored   {self.out}",
                f"rejects  {self.rejects}",
                f"{self.seconds:.1f} s ({rate:,.0f} rows/s), MLflow run {self.run_id}",
            ]
        )


def new_batch_id() -> str:
    """A batch id that sorts by time: 20261207T123456Z-1a2b3c4d."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def load_model(settings: Settings, alias: str = CHAMPION, model_uri: str | None = None) -> Champion:
    """The model a batch scores with, loaded as the API loads it; NoModel says why not."""
    if model_uri:
        settings = settings.model_copy(update={"model_uri": model_uri})
    loader = ChampionLoader(settings, alias)
    quiet = logging.getLogger(loader_module.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warnings speak of serving; NoModel says it here
    try:
        _, message = loader.check()
    finally:
        quiet.setLevel(level)
    if loader.current is None:
        hint = (
            "; give --model-uri a model package folder (make package) or an MLflow model URI "
            "(models:/<name>/<version>, runs:/<run id>/model)"
            if model_uri
            else ""
        )
        raise NoModel(message + hint)
    return loader.current


def score_table(
    settings: Settings,
    source: Path | str,
    out: Path | str,
    *,
    alias: str = CHAMPION,
    model_uri: str | None = None,
    engine: str = "local",
    overwrite: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = False,
    engine_options: dict[str, Any] | None = None,
) -> BatchResult:
    """Score every row of `source` into `out` (Parquet) and its rejects file, as one MLflow run."""
    import mlflow

    from mlops_kit.tracking import configure, invocation_tags

    if engine not in ENGINES:
        raise UnknownEngine(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    batch_id = new_batch_id()
    data = reader.open_source(source)
    paths = outputs.plan(out, data.path, batch_id, overwrite=overwrite)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # ours is the bar
    champion = load_model(settings, alias, model_uri)  # before anything is created or tracked
    inputs = validate.find_columns(data.columns, champion.inputs)  # whole-input error: no run
    columns.check_no_clash(data.columns, champion.classes)
    threshold = settings.low_confidence
    configure(settings)
    tags = {
        record.KIND_TAG: "batch",
        record.BATCH_ID_TAG: batch_id,
        "model_name": champion.name,
        "model_version": champion.version,
        **invocation_tags(),
    }
    with mlflow.start_run(run_name=f"batch-{batch_id}", tags=tags) as run:
        mlflow.log_params(
            {
                "input": str(data.path),
                "input_kind": data.kind,
                "input_parts": len(data.parts),
                "output": str(paths.out),
                "rejects": str(paths.rejects),
                "engine": engine,
                "model": model_uri or f"models:/{champion.name}@{alias}",
                "model_version": champion.version,
                "scoring": champion.scoring,
                "chunk_rows": chunk_rows,
                "low_confidence_threshold": threshold,
                "batch_id": batch_id,
            }
        )
        started, scored_at = time.perf_counter(), datetime.now(UTC)
        try:
            tally = ENGINES[engine](
                champion,
                data,
                paths,
                threshold=threshold,
                chunk_rows=chunk_rows,
                progress=progress,
                **(engine_options or {}),
            )
            paths.commit()
        except BaseException:
            paths.discard()
            raise
        seconds = time.perf_counter() - started
        record.log_batch(data, tally, local.BINS, threshold, seconds)
    # the loop (monitor, capture --source batch) reads the output where it lies, from this row
    batches.record(
        settings.store,
        batches.BatchRun(
            batch_id=batch_id,
            created_at=scored_at,
            model_name=champion.name,
            model_version=champion.version,
            source=str(data.path),
            output=str(paths.out),
            rows=tally.scored,
            rejected=tally.rejected,
            low_confidence_threshold=threshold,
            inputs=inputs,
            run_id=run.info.run_id,
        ),
    )
    return BatchResult(
        batch_id=batch_id,
        source=data.path,
        out=paths.out,
        rejects=paths.rejects,
        engine=engine,
        model_name=champion.name,
        model_version=champion.version,
        rows_in=tally.rows_in,
        scored=tally.scored,
        rejected=tally.rejected,
        low_confidence_share=tally.low_confidence_share,
        seconds=seconds,
        run_id=run.info.run_id,
    )
