"""Read a batch's input in bounded chunks: a CSV or Parquet file, or a folder of parts.

A CSV is read the way the kit reads a user's file (``tables.py``): the head of each file decides
the encoding (UTF-8, else Windows-1252), the separator (',', ';' or tab) and which columns hold
numbers written with a decimal comma ('14,23'); then pyarrow streams it, every column as text
(so that a word in a number column on row 9,000,000 is a rejected row, not a failed batch).
Parquet is read one row group slice at a time, its columns keeping their types.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mlops_kit.tables import (
    MISSING_MARKERS,
    DataValidationError,
    decimal_comma_columns,
    parse_csv_text,
    sniff_separator,
)

HEAD_BYTES = 1 << 20  # the part of a CSV its reading options are decided from
PIECE_BYTES = (1 << 20, 64 << 20)  # the smallest and largest piece of a CSV parsed at once
SUFFIXES = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
Kind = Literal["csv", "parquet"]


class InputError(ValueError):
    """The input cannot be read; the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class CsvOptions:
    """How one CSV file is read, decided from its head."""

    encoding: str
    separator: str
    columns: list[str]
    decimal_comma: list[str] = field(default_factory=list)
    newlines_in_values: bool = False
    bytes_per_row: int = 100  # in the head: how many bytes of the file make one row


@dataclass(frozen=True)
class Source:
    """The files of one input, all of one kind, with the columns every part shares."""

    path: Path
    kind: Kind
    parts: list[Path]
    columns: list[str]
    schema: pa.Schema  # what a chunk holds (CSV: every column as text)
    csv: dict[Path, CsvOptions] = field(default_factory=dict)
    rows: int | None = None  # known for Parquet from its metadata; None for CSV
    size: int = 0  # bytes of all parts

    @property
    def unit(self) -> str:
        """What ``chunks`` counts its progress in: bytes of CSV, rows of Parquet."""
        return "B" if self.kind == "csv" else "rows"

    @property
    def total(self) -> int:
        """The progress of the whole input, in ``unit``."""
        return self.size if self.kind == "csv" else int(self.rows or 0)

    def decimal_comma(self, column: str) -> bool:
        """Whether any CSV part writes this column's numbers with a decimal comma."""
        return any(column in o.decimal_comma for o in self.csv.values())


def _kind(path: Path) -> Kind | None:
    return SUFFIXES.get(path.suffix.lower())  # type: ignore[return-value]


def _parts(path: Path) -> tuple[Kind, list[Path]]:
    if not path.exists():
        raise InputError(
            f"input not found: {path}; give a CSV or Parquet file, or a folder of them"
        )
    if path.is_file():
        kind = _kind(path)
        if kind is None:
            raise InputError(
                f"input {path} is neither CSV nor Parquet (by its name); name it .csv or .parquet"
            )
        return kind, [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    kinds = {_kind(p) for p in files} - {None}
    if not kinds:
        raise InputError(f"the folder {path} holds no .csv or .parquet file to score")
    if len(kinds) > 1:
        raise InputError(f"the folder {path} mixes CSV and Parquet parts; score one kind at a time")
    kind = kinds.pop()
    return kind, [p for p in files if _kind(p) == kind]


def _head_text(path: Path) -> tuple[str, str]:
    """The first lines of a file as text, and the encoding they decode with."""
    with open(path, "rb") as fh:
        raw = fh.read(HEAD_BYTES)
        complete = len(raw) < HEAD_BYTES
    if not complete and b"\n" in raw:
        raw = raw[: raw.rindex(b"\n") + 1]
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding), encoding.removesuffix("-sig")
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path} is neither UTF-8 nor Windows-1252 text; save it as 'CSV UTF-8'")


def csv_options(path: Path) -> CsvOptions:
    """The reading options of a CSV file, from its head (as ``tables.load_raw`` decides them)."""
    text, encoding = _head_text(path)
    if not text.strip():
        raise InputError(f"input file is empty: {path}")
    separator = sniff_separator(text)
    try:
        head = parse_csv_text(text, separator)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path} is not a readable CSV ({exc})") from exc
    columns = [c.strip() for c in next(csv.reader(io.StringIO(text), delimiter=separator))]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes or "" in columns:
        raise InputError(
            f"{path} has a repeated or empty column header ({', '.join(dupes) or 'empty'}); "
            "give every column its own name"
        )
    head.columns = columns
    try:
        comma = decimal_comma_columns(head.apply(lambda c: c.str.strip()), separator)
    except DataValidationError as exc:
        raise InputError(f"{path}: {exc}") from exc
    newlines = bool(head.apply(lambda c: c.str.contains("\n", regex=False).any()).any())
    per_row = max(len(text.encode(encoding, errors="replace")) // max(len(head), 1), 1)
    return CsvOptions(encoding, separator, columns, comma, newlines, per_row)


def _parse(piece: bytes, options: CsvOptions, columns: list[str]) -> tuple[pa.Table, list[str]]:
    """One piece of a CSV's rows (no header) as a table of text columns, and its broken lines
    (a line with more or fewer fields than the header: a reason each, the line left out)."""
    broken: list[str] = []

    def skip(row: pcsv.InvalidRow) -> str:
        text = row.text if len(row.text) <= 200 else row.text[:197] + "..."
        broken.append(
            f"the line has {row.actual_columns} fields where the header has "
            f"{row.expected_columns}: {text!r}"
        )
        return "skip"

    read = pcsv.ReadOptions(
        column_names=options.columns,
        encoding="utf8" if options.encoding == "utf-8" else options.encoding,
        block_size=max(len(piece) // 2, 1 << 20) if piece else 1 << 20,  # two parser threads
    )
    parse = pcsv.ParseOptions(
        delimiter=options.separator,
        newlines_in_values=options.newlines_in_values,
        invalid_row_handler=skip,
    )
    convert = pcsv.ConvertOptions(
        column_types=dict.fromkeys(options.columns, pa.string()),
        null_values=MISSING_MARKERS,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        include_columns=columns,
    )
    table = pcsv.read_csv(
        pa.py_buffer(piece), read_options=read, parse_options=parse, convert_options=convert
    )
    return table, broken


def _pieces(part: Path, size: int, whole: bool) -> Iterator[bytes]:
    """A CSV's data lines in pieces of about `size` bytes, each ending at a line break.

    pyarrow's own streaming reader reads ahead of its consumer without bound (the whole file,
    when parsing outruns scoring); pieces cut here keep one piece in memory at a time. A file
    with line breaks inside quoted values (seen in its head) is read whole instead.
    """
    with open(part, "rb") as fh:
        fh.readline()  # the header: the column names come from the head's parse
        if whole:
            yield fh.read()
            return
        rest = b""
        while block := fh.read(size):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a piece: read on
                rest = block
                continue
            rest = block[cut:]
            yield block[:cut]
        if rest:
            yield rest


def open_source(path: Path | str) -> Source:
    """Find the parts of an input and check they can be read together; or InputError."""
    path = Path(path).expanduser().absolute()
    kind, parts = _parts(path)
    size = sum(p.stat().st_size for p in parts)
    if kind == "csv":
        options = {p: csv_options(p) for p in parts}
        columns = options[parts[0]].columns
        schema = pa.schema([(c, pa.string()) for c in columns])
        for part, o in options.items():
            if set(o.columns) != set(columns):
                raise InputError(_other_columns(part, parts[0], o.columns, columns))
        return Source(path, kind, parts, columns, schema, options, None, size)
    try:
        files = {p: pq.ParquetFile(p) for p in parts}
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path} is not a readable Parquet file or folder ({exc})") from exc
    schema = files[parts[0]].schema_arrow
    for part, f in files.items():
        if set(f.schema_arrow.names) != set(schema.names):
            raise InputError(_other_columns(part, parts[0], f.schema_arrow.names, schema.names))
    rows = sum(f.metadata.num_rows for f in files.values())
    return Source(path, kind, parts, list(schema.names), schema, {}, rows, size)


def _other_columns(part: Path, first: Path, has: list[str], wanted: list[str]) -> str:
    extra = sorted(set(has) - set(wanted))
    missing = sorted(set(wanted) - set(has))
    return (
        f"the part {part.name} has other columns than {first.name} (extra: {extra or 'none'}, "
        f"missing: {missing or 'none'}); every part of a folder needs the same columns"
    )


@dataclass(frozen=True)
class Chunk:
    """Rows of one part read together; `broken`: a reason per CSV line that could not be read."""

    part: Path
    table: pa.Table
    progress: int  # in Source.unit
    broken: list[str] = field(default_factory=list)


def chunks(source: Source, rows: int) -> Iterator[Chunk]:
    """The input as chunks of at most `rows` rows, part after part."""
    for part in source.parts:
        if source.kind == "parquet":
            yield from _parquet_chunks(source, part, rows)
        else:
            yield from _csv_chunks(source, part, rows)


def _parquet_chunks(source: Source, part: Path, rows: int) -> Iterator[Chunk]:
    reader = pq.ParquetFile(part)
    for batch in reader.iter_batches(batch_size=rows, columns=source.columns):
        table = pa.Table.from_batches([batch]).select(source.columns)
        try:
            table = table.cast(source.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise InputError(
                f"the part {part.name} has other column types than the first part ({exc})"
            ) from exc
        yield Chunk(part, table, table.num_rows)


def _csv_chunks(source: Source, part: Path, rows: int) -> Iterator[Chunk]:
    options = source.csv[part]
    size = min(max(rows * options.bytes_per_row, PIECE_BYTES[0]), PIECE_BYTES[1])
    for piece in _pieces(part, size, options.newlines_in_values):
        try:
            table, broken = _parse(piece, options, source.columns)
        except pa.ArrowInvalid as exc:
            raise InputError(f"{part} cannot be read as CSV: {exc}") from exc
        table = table.select(source.columns)
        for start in range(0, max(table.num_rows, 1), rows):
            chunk = table.slice(start, rows)
            progress = round(len(piece) * chunk.num_rows / max(table.num_rows, 1))
            yield Chunk(part, chunk, progress, broken if start == 0 else [])
