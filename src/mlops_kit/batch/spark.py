"""The Spark engine: a table of any size scored on Spark with ``mlflow.pyfunc.spark_udf``.

    read (CSV / Parquet, file or folder)
      -> validate: ``batch.validate.check``, the local engine's and so the API's rules, per Arrow
         batch in a pandas UDF that sees only the model's input columns
      -> rows refused ─────────────────────────────────────────────▶ OUT.rejects.parquet (+ reason)
      -> rows accepted -> ``spark_udf(struct(inputs in model order))`` -> the same columns as the
         local engine (``batch.columns``) ──────────────────────────▶ OUT (a folder of parts)

The model's outputs are matched by name (``result_type`` is the struct of predicted, confidence and
one probability per class); its inputs go in by position, so the struct is built in model order.
Spark writes into a hidden folder beside OUT, renamed into place only when both outputs are whole:
a batch that fails half-way leaves nothing at OUT. A CSV is read as text (one pass, no inference
pass over the file, no value lost to a wrong guess of a column's type): the model's number inputs
come out as the float64 values scored, every other column as it was written.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_kit.batch import columns as out_columns
from mlops_kit.batch.validate import NOT_SCORABLE, check, find_columns
from mlops_kit.config import MODEL_MANIFEST
from mlops_kit.model import CONFIDENCE, PREDICTED
from mlops_kit.scoring.inputs import InputField, RequestModels
from mlops_kit.scoring.loader import Champion
from mlops_kit.spark_session import session

FEATURES = "__mlops_kit_features"  # the validated model inputs and the reason, while in Spark
SCORES = "__mlops_kit_scores"  # the model's answer, while in Spark
BINS = 20  # confidence histogram: 20 bins of 0.05 over [0, 1]
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")


class SparkInputError(ValueError):
    """The input cannot be read as a table; the message names the path and the fix."""


@dataclass(frozen=True)
class SparkBatch:
    """What a batch scored on Spark produced."""

    out: Path
    rejects: Path
    rows_scored: int
    rows_rejected: int
    low_confidence: int
    histogram: list[int]  # rows per confidence bin of 1/BINS, from 0 to 1
    master: str

    @property
    def rows(self) -> int:
        return self.rows_scored + self.rows_rejected


def rejects_path(out: Path) -> Path:
    """Where the rows refused go: beside OUT (``scored.parquet`` -> ``scored.rejects.parquet``)."""
    stem = out.name.removesuffix(".parquet")
    return out.with_name(f"{stem}.rejects.parquet")


# ---------------------------------------------------------------- reading


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))


def table_format(path: Path) -> str:
    """ "csv" or "parquet", from the file's suffix or its folder's files; SparkInputError if neither."""
    if not path.exists():
        raise SparkInputError(f"input not found: {path}; give a CSV or Parquet file, or a folder")
    files = _files(path)
    if not files:
        raise SparkInputError(f"the folder {path} holds no file to score")
    suffixes = {p.suffix.lower() for p in files}
    if suffixes <= set(PARQUET_SUFFIXES):
        return "parquet"
    if suffixes <= set(CSV_SUFFIXES):
        return "csv"
    raise SparkInputError(
        f"cannot tell how to read {path} (files ending in {', '.join(sorted(suffixes))}): "
        "give CSV files (.csv) or Parquet files (.parquet), not a mix"
    )


def _separator(first: Path) -> str:
    from mlops_kit.tables import sniff_separator

    with open(first, encoding="utf-8-sig", errors="replace") as fh:
        return sniff_separator(fh.readline())


def read_table(spark: Any, path: Path) -> Any:
    """A Spark DataFrame of a CSV or Parquet file or folder (CSV: every column as text)."""
    kind = table_format(path)
    try:
        if kind == "parquet":
            return spark.read.parquet(str(path))
        return spark.read.csv(
            str(path),
            header=True,
            sep=_separator(_files(path)[0]),
            inferSchema=False,
            encoding="UTF-8",
            mode="PERMISSIVE",
        )
    except Exception as exc:  # noqa: BLE001 - Spark's analysis errors come as several types
        raise SparkInputError(f"Spark cannot read {path} as {kind}: {exc}") from exc


# ---------------------------------------------------------------- the model on disk


def model_dir(champion: Champion, tracking_uri: str, dst: Path) -> str:
    """A local folder of the champion's MLflow model, for spark_udf to ship to the executors."""
    import mlflow.artifacts

    source = Path(champion.source).expanduser()
    if (source / MODEL_MANIFEST).is_file():  # a model package: its model folder
        import json

        facts = json.loads((source / MODEL_MANIFEST).read_text())
        return str(source / facts["model_path"])
    if (source / "MLmodel").is_file():
        return str(source)
    return mlflow.artifacts.download_artifacts(
        artifact_uri=champion.source, dst_path=str(dst), tracking_uri=tracking_uri
    )


# ---------------------------------------------------------------- the Spark plan


def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


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


def _validator(fields: tuple[InputField, ...], max_batch: int, found: dict[str, str]) -> Any:
    """A pandas UDF: a struct of the table's input columns -> the model's inputs and a reason."""
    from pyspark.sql.functions import pandas_udf

    names = [f.name for f in fields]
    cache: dict[str, RequestModels] = {}

    @pandas_udf(_features_schema(fields))  # type: ignore[call-overload]
    def validate(table: pd.DataFrame) -> pd.DataFrame:
        inputs = cache.get("inputs") or cache.setdefault("inputs", RequestModels(fields, max_batch))
        checked = check(table, inputs, found)
        frame = checked.features[names].copy()
        frame[out_columns.REASON] = checked.reasons.to_numpy()
        return frame.reset_index(drop=True)

    return validate


def _finite(probas: list[str]) -> Any:
    from pyspark.sql import functions as F

    condition = F.lit(True)
    for name in probas:
        value = F.col(f"{SCORES}.{name}")
        ok = value.isNotNull() & ~F.isnan(value) & (F.abs(value) != float("inf"))
        condition = condition & ok
    return condition


def _write(frame: Any, folder: Path) -> None:
    frame.write.mode("errorifexists").parquet(str(folder))


def _counts(spark: Any, scored: Path, rejected: Path) -> tuple[int, int, int]:
    from pyspark.sql import functions as F

    table = spark.read.parquet(str(scored))
    row = table.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col(out_columns.LOW_CONFIDENCE).cast("long")).alias("low"),
    ).first()
    rejects = spark.read.parquet(str(rejected)).count()
    return int(row["rows"]), int(rejects), int(row["low"] or 0)


def _histogram(spark: Any, scored: Path) -> list[int]:
    from pyspark.sql import functions as F

    bin_of = F.least(F.floor(F.col(CONFIDENCE) * BINS), F.lit(BINS - 1)).cast("int")
    rows = spark.read.parquet(str(scored)).groupBy(bin_of.alias("bin")).count().collect()
    counts = [0] * BINS
    for row in rows:
        if row["bin"] is not None:
            counts[row["bin"]] = int(row["count"])
    return counts


def score_spark(
    champion: Champion,
    data: Path,
    out: Path,
    *,
    tracking_uri: str,
    threshold: float,
    batch_id: str | None = None,
    master: str | None = None,
    overwrite: bool = False,
) -> SparkBatch:
    """Score the table at `data` on Spark with the champion; scored rows to OUT, refused beside it.

    OUT and OUT.rejects.parquet appear together at the end, or not at all.
    """
    import mlflow.pyfunc
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    out, rejects = out.absolute(), rejects_path(out.absolute())
    if not overwrite:
        for path in (out, rejects):
            if path.exists():
                raise FileExistsError(f"{path} exists: choose another --out, or pass --overwrite")
    table_format(Path(data))  # before Spark starts: a path that is not there is named at once
    batch_id = batch_id or uuid.uuid4().hex
    spark = session(master, app_name=f"mlops-kit score {batch_id[:8]}")
    master = spark.sparkContext.master
    table = read_table(spark, Path(data))
    inputs = champion.inputs
    found = find_columns(table.columns, inputs)  # MissingInputs names the columns
    out_columns.check_no_clash(table.columns, champion.classes)
    numbers = {found[f.name]: f.name for f in inputs.fields if f.kind == "number"}

    validate = _validator(inputs.fields, inputs.max_batch, found)
    read = [_col(found[f.name]).alias(found[f.name]) for f in inputs.fields]
    checked = table.withColumn(FEATURES, validate(F.struct(*read)))
    checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    reason = F.col(f"{FEATURES}.{out_columns.REASON}")
    scored = checked

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".spark", dir=out.parent))
    try:
        local_model = model_dir(champion, tracking_uri, work / "model")
        udf = mlflow.pyfunc.spark_udf(
            spark,
            local_model,
            result_type=_scores_schema(champion.classes),
            env_manager="local",
        )
        model_inputs = F.struct(
            *[F.col(f"{FEATURES}.{f.name}").alias(f.name) for f in inputs.fields]
        )
        scored = checked.filter(reason.isNull()).withColumn(SCORES, udf(model_inputs))
        probas = out_columns.proba_columns(champion.classes)
        kept = [
            F.col(f"{FEATURES}.{numbers[c]}").alias(c) if c in numbers else _col(c)
            for c in table.columns
        ]
        added = [
            F.col(f"{SCORES}.{PREDICTED}").alias(PREDICTED),
            F.col(f"{SCORES}.{CONFIDENCE}").alias(CONFIDENCE),
            *[F.col(f"{SCORES}.{p}").alias(p) for p in probas],
            (F.col(f"{SCORES}.{CONFIDENCE}") < F.lit(threshold)).alias(out_columns.LOW_CONFIDENCE),
            F.lit(champion.name).alias(out_columns.MODEL_NAME),
            F.lit(str(champion.version)).alias(out_columns.MODEL_VERSION),
            F.lit(batch_id).alias(out_columns.BATCH_ID),
        ]
        finite = _finite(probas)
        scored = scored.withColumn("__finite", finite).persist(StorageLevel.MEMORY_AND_DISK)
        _write(scored.filter(F.col("__finite")).select(*kept, *added), work / "scored")
        refused = checked.filter(reason.isNotNull()).select(
            *[_col(c) for c in table.columns],
            reason.alias(out_columns.REASON),
            F.lit(batch_id).alias(out_columns.BATCH_ID),
        )
        not_scorable = scored.filter(~F.col("__finite")).select(
            *[_col(c) for c in table.columns],
            F.lit(NOT_SCORABLE).alias(out_columns.REASON),
            F.lit(batch_id).alias(out_columns.BATCH_ID),
        )
        _write(refused.unionByName(not_scorable), work / "rejects")
        rows_scored, rows_rejected, low = _counts(spark, work / "scored", work / "rejects")
        histogram = _histogram(spark, work / "scored")
        for path in (out, rejects):  # only with overwrite, checked above
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        (work / "scored").rename(out)
        (work / "rejects").rename(rejects)
    finally:
        for frame in (scored, checked):
            frame.unpersist()
        shutil.rmtree(work, ignore_errors=True)
    return SparkBatch(out, rejects, rows_scored, rows_rejected, low, histogram, master)
