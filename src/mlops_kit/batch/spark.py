"""The Spark engine: a table of any size scored on Spark with ``mlflow.pyfunc.spark_udf``.

    read (the CSV or Parquet parts ``batch.reader`` found, with its reading options)
      -> validate: ``batch.validate.check``, the local engine's and so the API's rules, per Arrow
         batch in a pandas UDF that sees only the model's input columns
      -> rows refused ──────────────────────────────────────────▶ OUT.rejects.parquet (+ reason)
      -> rows accepted -> ``spark_udf(struct(inputs in model order))`` -> the same columns as the
         local engine (``batch.columns``) ───────────────────────▶ OUT (a folder of parts)

The model's outputs are matched by name (``result_type`` is the struct of predicted, confidence and
one probability per class); its inputs go in by position, so the struct is built in model order.
Spark writes into the hidden temporary paths of ``batch.outputs``, which ``batch.run`` renames into
place only when the whole batch succeeded. A CSV is read as text, as the local engine reads it: the
model's number inputs come out as the float64 values scored, every other column as written.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_kit.batch import columns as out_columns
from mlops_kit.batch.local import BINS, Tally
from mlops_kit.batch.outputs import Outputs
from mlops_kit.batch.reader import CsvOptions, InputError, Source
from mlops_kit.batch.validate import NOT_SCORABLE, check, find_columns
from mlops_kit.confidence import CONFIDENCE, PREDICTED
from mlops_kit.config import MODEL_MANIFEST
from mlops_kit.scoring.inputs import InputField, RequestModels
from mlops_kit.scoring.loader import Champion
from mlops_kit.spark_session import session
from mlops_kit.tables import MISSING_MARKERS

FEATURES = "__mlops_kit_features"  # the validated model inputs and the reason, while in Spark
SCORES = "__mlops_kit_scores"  # the model's answer, while in Spark
FINITE = "__mlops_kit_finite"  # whether every probability of the row is a finite number
BROKEN = "__mlops_kit_broken"  # a CSV line that does not split into the header's fields


# ---------------------------------------------------------------- the model on disk


def model_dir(champion: Champion, dst: Path) -> str:
    """A local folder of the champion's MLflow model, for spark_udf to ship to the executors."""
    import mlflow.artifacts

    source = Path(champion.source).expanduser()
    if (source / MODEL_MANIFEST).is_file():  # a model package: its model folder
        facts = json.loads((source / MODEL_MANIFEST).read_text())
        return str(source / facts["model_path"])
    if (source / "MLmodel").is_file():
        return str(source)
    return mlflow.artifacts.download_artifacts(artifact_uri=champion.source, dst_path=str(dst))


# ---------------------------------------------------------------- reading


def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _read_csv(spark: Any, parts: list[Path], options: CsvOptions) -> Any:
    """CSV parts that share their reading options, every column as text, missing markers null;
    a line with more or fewer fields than the header is kept whole in the column BROKEN."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    fields = [StructField(c, StringType()) for c in [*options.columns, BROKEN]]
    schema = StructType(fields)
    frame = spark.read.csv(
        [str(p) for p in parts],
        schema=schema,
        header=True,
        enforceSchema=False,  # the header of each part must name the schema's columns
        sep=options.separator,
        encoding=options.encoding,
        quote='"',
        escape='"',  # "" inside quotes, as pandas and pyarrow read it
        multiLine=options.newlines_in_values,
        mode="PERMISSIVE",
        columnNameOfCorruptRecord=BROKEN,
    )
    markers = [m for m in MISSING_MARKERS if m]
    return frame.select(
        *[F.when(_col(c).isin(markers), None).otherwise(_col(c)).alias(c) for c in options.columns],
        F.col(BROKEN),
    )


def _number_text(column: Any) -> Any:
    """'1.234,5' as '1234.5': a number written with a decimal comma, as the local engine reads it."""
    from pyspark.sql import functions as F

    return F.regexp_replace(F.regexp_replace(column, r"\.", ""), ",", ".")


def _groups(source: Source) -> Iterable[tuple[list[Path], CsvOptions | None]]:
    """The parts, grouped by how they are read (Parquet: one group)."""
    if source.kind == "parquet":
        yield source.parts, None
        return
    groups: dict[tuple[Any, ...], list[Path]] = {}
    for part in source.parts:
        o = source.csv[part]
        key = (
            o.encoding,
            o.separator,
            tuple(o.columns),
            tuple(o.decimal_comma),
            o.newlines_in_values,
        )
        groups.setdefault(key, []).append(part)
    for parts in groups.values():
        yield parts, source.csv[parts[0]]


# ---------------------------------------------------------------- the Spark plan


def _features_schema(fields: tuple[InputField, ...]) -> Any:
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    parts = [
        StructField(f.name, DoubleType() if f.kind == "number" else StringType()) for f in fields
    ]
    return StructType([*parts, StructField(out_columns.REASON, StringType())])


def _scores_schema(classes: list[str]) -> Any:
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    probas = [StructField(name, DoubleType()) for name in out_columns.proba_columns(classes)]
    return StructType(
        [StructField(PREDICTED, StringType()), StructField(CONFIDENCE, DoubleType()), *probas]
    )


def broken_line(line: str, separator: str, expected: int) -> str:
    """The reason of a CSV line that does not split into the header's fields (the local engine's)."""
    import csv

    actual = len(next(csv.reader([line], delimiter=separator, quotechar='"'), []))
    text = line if len(line) <= 200 else line[:197] + "..."
    return f"the line has {actual} fields where the header has {expected}: {text!r}"


def _validator(
    fields: tuple[InputField, ...],
    max_batch: int,
    found: dict[str, str],
    csv: CsvOptions | None,
) -> Any:
    """A pandas UDF: a struct of the table's input columns -> the model's inputs and a reason."""
    from pyspark.sql.functions import pandas_udf

    # the function's values are captured as plain data, so that a Python worker unpickling it
    # imports batch.validate alone (not this module, nor mlflow through batch.columns)
    names, reason = [f.name for f in fields], out_columns.REASON
    separator, expected = (csv.separator, len(csv.columns)) if csv else (",", 0)
    cache: dict[str, RequestModels] = {}

    @pandas_udf(_features_schema(fields))  # type: ignore[call-overload]
    def validate(table: pd.DataFrame) -> pd.DataFrame:
        inputs = cache.get("inputs") or cache.setdefault("inputs", RequestModels(fields, max_batch))
        lines = table.pop(BROKEN) if BROKEN in table.columns else None
        checked = check(table, inputs, found)
        frame = checked.features[names].copy()
        frame[reason] = checked.reasons.to_numpy()
        if lines is not None and lines.notna().any():
            rows = lines.notna().to_numpy()
            frame.loc[rows, reason] = [broken_line(t, separator, expected) for t in lines[rows]]
        return frame.reset_index(drop=True)

    return validate


def _validated(spark: Any, source: Source, champion: Champion, found: dict[str, str]) -> Any:
    """The input with a struct column of the model's inputs as validated and the reason (or null)."""
    from pyspark.sql import functions as F

    numbers = {found[f.name] for f in champion.inputs.fields if f.kind == "number"}
    frames = []
    for parts, options in _groups(source):
        validate = _validator(champion.inputs.fields, champion.inputs.max_batch, found, options)
        comma = set(options.decimal_comma) if options else set()
        read = [
            (_number_text(_col(c)) if c in numbers and c in comma else _col(c)).alias(c)
            for c in dict.fromkeys(found.values())
        ]
        if options is None:
            frame = spark.read.parquet(*[str(p) for p in parts]).select(
                *[_col(c) for c in source.columns]
            )
            frames.append(frame.withColumn(FEATURES, validate(F.struct(*read))))
            continue
        frame = _read_csv(spark, parts, options)
        frame = frame.withColumn(FEATURES, validate(F.struct(*read, F.col(BROKEN))))
        broken = F.col(BROKEN).isNotNull()
        as_read = [F.when(~broken, _col(c)).alias(c) for c in source.columns]  # a broken line:
        frames.append(frame.select(*as_read, F.col(FEATURES)))  # no column read, as locally
    validated = frames[0]
    for frame in frames[1:]:
        validated = validated.unionByName(frame)
    return validated


def _finite(probas: list[str]) -> Any:
    from pyspark.sql import functions as F

    condition = F.lit(True)
    for name in probas:
        value = F.col(f"{SCORES}.{name}")
        condition = condition & value.isNotNull() & ~F.isnan(value)
        condition = condition & (F.abs(value) != float("inf"))
    return condition


def _tally(spark: Any, scored: Path, rejected: Path) -> Tally:
    """What was written, counted by reading it back (two column-pruned scans, no Python)."""
    from pyspark.sql import functions as F

    confidence = F.col(CONFIDENCE)
    # the bins of the local engine (np.histogram over BINS: the last bin holds 1.0 too)
    bin_of = F.least(
        F.floor((confidence - F.lit(BINS[0])) / F.lit(BINS[1] - BINS[0])), F.lit(len(BINS) - 2)
    )
    row = (
        spark.read.parquet(str(scored))
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col(out_columns.LOW_CONFIDENCE).cast("long")).alias("low"),
            F.sum(confidence).alias("sum"),
            *[F.sum((bin_of == i).cast("long")).alias(f"bin{i}") for i in range(len(BINS) - 1)],
        )
        .first()
    )
    rejects = spark.read.parquet(str(rejected)).count()
    tally = Tally()
    tally.scored, tally.rejected = int(row["rows"]), int(rejects)
    tally.rows_in = tally.scored + tally.rejected
    tally.low_confidence = int(row["low"] or 0)
    tally.confidence_sum = float(row["sum"] or 0.0)
    tally.histogram = np.array([int(row[f"bin{i}"] or 0) for i in range(len(BINS) - 1)])
    return tally


def _write(frame: Any, path: Path) -> None:
    frame.write.parquet(str(path))


def score(
    champion: Champion,
    source: Source,
    outputs: Outputs,
    *,
    threshold: float,
    chunk_rows: int = 0,
    progress: bool = False,
    master: str | None = None,
) -> Tally:
    """Score the whole input on Spark into the temporary outputs (``Outputs.commit`` moves them).

    ``master``: a standalone cluster's ``spark://host:port``; default ``local[2]``. Spark sizes its
    own batches, so ``chunk_rows`` is not used.
    """
    import mlflow.pyfunc
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    found = find_columns(source.columns, champion.inputs)  # MissingInputs names the columns
    out_columns.check_no_clash(source.columns, champion.classes)
    numbers = {found[f.name]: f.name for f in champion.inputs.fields if f.kind == "number"}
    spark = session(master, app_name=f"mlops-kit score {outputs.batch_id}", progress=progress)
    # Both frames are kept on disk, not in the heap: the model scores each row once, and a
    # partition of millions of rows streams to disk in batches (the in-memory cache builds a
    # partition whole: OutOfMemoryError at 3M rows in local[2]).
    try:
        checked = _validated(spark, source, champion, found).persist(StorageLevel.DISK_ONLY)
    except Exception as exc:  # noqa: BLE001 - Spark's analysis errors come as several types
        raise InputError(f"Spark cannot read {source.path}: {_first_line(exc)}") from exc
    reason = F.col(f"{FEATURES}.{out_columns.REASON}")
    scored = checked
    outputs.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlops-kit-spark-model-") as tmp:
        try:
            udf = mlflow.pyfunc.spark_udf(
                spark,
                model_dir(champion, Path(tmp)),
                result_type=_scores_schema(champion.classes),
                env_manager="local",
            )
            model_inputs = F.struct(
                *[F.col(f"{FEATURES}.{f.name}").alias(f.name) for f in champion.inputs.fields]
            )
            probas = out_columns.proba_columns(champion.classes)
            scored = (
                checked.filter(reason.isNull())
                .withColumn(SCORES, udf(model_inputs))
                .withColumn(FINITE, _finite(probas))
                .persist(StorageLevel.DISK_ONLY)
            )
            kept = [
                F.col(f"{FEATURES}.{numbers[c]}").alias(c) if c in numbers else _col(c)
                for c in source.columns
            ]
            confidence = F.col(f"{SCORES}.{CONFIDENCE}")
            added = [
                F.col(f"{SCORES}.{PREDICTED}").alias(PREDICTED),
                confidence.alias(CONFIDENCE),
                *[F.col(f"{SCORES}.{p}").alias(p) for p in probas],
                (confidence < F.lit(threshold)).alias(out_columns.LOW_CONFIDENCE),
                F.lit(champion.name).alias(out_columns.MODEL_NAME),
                F.lit(str(champion.version)).alias(out_columns.MODEL_VERSION),
                F.lit(outputs.batch_id).alias(out_columns.BATCH_ID),
            ]
            final = scored.filter(F.col(FINITE)).select(*kept, *added)
            _write(final, outputs.tmp_out)
            as_read = [_col(c) for c in source.columns]
            batch_id = F.lit(outputs.batch_id).alias(out_columns.BATCH_ID)
            refused = checked.filter(reason.isNotNull()).select(
                *as_read, reason.alias(out_columns.REASON), batch_id
            )
            not_scorable = scored.filter(~F.col(FINITE)).select(
                *as_read, F.lit(NOT_SCORABLE).alias(out_columns.REASON), batch_id
            )
            _write(refused.unionByName(not_scorable), outputs.tmp_rejects)
            return _tally(spark, outputs.tmp_out, outputs.tmp_rejects)
        finally:
            for frame in (scored, checked):
                frame.unpersist()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
