"""The local engine: stream the input through the champion in this process, chunk by chunk.

Each chunk is validated as the API validates a record (``validate``), scored with the API's own
code (``scoring.score.predict_proba``: the accelerator where the model has one), and written with
pyarrow's ParquetWriter: scored rows to the output, refused rows with their reason to the rejects
file. Memory holds one chunk at a time, whatever the size of the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from mlops_kit.batch import columns, reader, validate
from mlops_kit.batch.outputs import Outputs
from mlops_kit.scoring.loader import Champion
from mlops_kit.scoring.score import predict_proba

BINS = np.linspace(0.0, 1.0, 21)  # the confidence histogram's bins


@dataclass
class Tally:
    """What a batch did, counted chunk by chunk (no row is kept)."""

    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    low_confidence: int = 0
    confidence_sum: float = 0.0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(len(BINS) - 1, np.int64))

    def add(self, confidence: np.ndarray, threshold: float, rejected: int) -> None:
        """Count one chunk: the confidences of its scored rows and how many were rejected."""
        self.scored += len(confidence)
        self.rejected += rejected
        self.rows_in += len(confidence) + rejected
        self.low_confidence += int((confidence < threshold).sum())
        self.confidence_sum += float(confidence.sum())
        self.histogram += np.histogram(confidence, bins=BINS)[0]

    @property
    def low_confidence_share(self) -> float:
        """Share of scored rows below the review threshold."""
        return self.low_confidence / self.scored if self.scored else 0.0

    @property
    def mean_confidence(self) -> float:
        """Mean confidence of the scored rows."""
        return self.confidence_sum / self.scored if self.scored else float("nan")


@dataclass(frozen=True)
class Plan:
    """Everything a chunk needs: the model, where its inputs are, the threshold, the batch id."""

    champion: Champion
    found: dict[str, str]  # model input -> the table's column
    threshold: float
    batch_id: str

    @property
    def numbers(self) -> list[str]:
        """The table's columns that feed the model's number inputs."""
        return [self.found[f.name] for f in self.champion.inputs.fields if f.kind == "number"]


def _model_columns(chunk: pa.Table, plan: Plan, decimal_comma: list[str]) -> pd.DataFrame:
    """The chunk's model input columns as pandas, numbers written '1.234,5' as '1234.5'."""
    wanted = list(dict.fromkeys(plan.found.values()))
    frame = chunk.select(wanted).to_pandas()
    for column in set(plan.numbers) & set(decimal_comma):
        text = frame[column].str.replace(".", "", regex=False)
        frame[column] = text.str.replace(",", ".", regex=False)
    return frame


def score_chunk(
    chunk: pa.Table, plan: Plan, decimal_comma: list[str] | None = None
) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """One chunk: (scored rows, rejected rows, confidence of the scored rows)."""
    champion = plan.champion
    checked = validate.check(
        _model_columns(chunk, plan, decimal_comma or []), champion.inputs, plan.found
    )
    reasons = checked.reasons.to_numpy(dtype=object, copy=True)
    ok = checked.valid.copy()
    proba = np.empty((0, len(champion.classes)))
    if ok.any():
        proba = predict_proba(champion, checked.features[ok])
        finite = np.isfinite(proba).all(axis=1)
        if not finite.all():  # scores the API would refuse too (scoring.score)
            rows = np.flatnonzero(ok)[~finite]
            reasons[rows] = validate.NOT_SCORABLE
            ok[rows] = False
            proba = proba[finite]
    numbers = {
        plan.found[f.name]: checked.features[f.name].to_numpy()[ok]
        for f in champion.inputs.fields
        if f.kind == "number"
    }
    scored = columns.scored_table(
        chunk.filter(pa.array(ok)),
        numbers,
        proba,
        champion.classes,
        plan.threshold,
        champion.name,
        champion.version,
        plan.batch_id,
    )
    refused = ~ok
    rejects = columns.rejects_table(
        chunk.filter(pa.array(refused)), reasons[refused], plan.batch_id
    )
    confidence = proba.max(axis=1) if len(proba) else np.empty(0)
    return scored, rejects, confidence


def score(
    champion: Champion,
    source: reader.Source,
    outputs: Outputs,
    *,
    threshold: float,
    chunk_rows: int,
    progress: bool = False,
) -> Tally:
    """Score the whole input into the temporary outputs (``Outputs.commit`` moves them in place)."""
    found = validate.find_columns(source.columns, champion.inputs)
    columns.check_no_clash(source.columns, champion.classes)
    plan = Plan(champion, found, threshold, outputs.batch_id)
    scored_schema = columns.scored_schema(source.schema, plan.numbers, champion.classes)
    rejects_schema = columns.rejects_schema(source.schema)
    tally = Tally()
    outputs.out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(
        total=source.total,
        unit=source.unit,
        unit_scale=True,
        desc=f"scoring {Path(source.path).name}",
        disable=None if progress else True,  # None: shown on a terminal only
    )
    with (
        bar,
        pq.ParquetWriter(outputs.tmp_out, scored_schema) as out,
        pq.ParquetWriter(outputs.tmp_rejects, rejects_schema) as rejects,
    ):
        for chunk in reader.chunks(source, chunk_rows):
            options = source.csv.get(chunk.part)
            comma = options.decimal_comma if options else []
            scored, refused, confidence = score_chunk(chunk.table, plan, comma)
            if chunk.broken:  # lines the CSV parser could not split into the header's fields
                n, schema = len(chunk.broken), source.schema
                unread = pa.Table.from_arrays([pa.nulls(n, f.type) for f in schema], schema=schema)
                refused = pa.concat_tables(
                    [refused, columns.rejects_table(unread, chunk.broken, plan.batch_id)]
                )
            if scored.num_rows:
                out.write_table(scored.cast(scored_schema))
            if refused.num_rows:
                rejects.write_table(refused.cast(rejects_schema))
            tally.add(confidence, threshold, refused.num_rows)
            bar.update(chunk.progress)
    return tally
