"""Reading a user's CSV file: encoding, separator, decimal commas, headers, the penguin layout."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from pathlib import Path

import pandas as pd

MISSING_MARKERS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", ".", "?"]
PENGUIN_RENAMES = {"culmen_length_mm": "bill_length_mm", "culmen_depth_mm": "bill_depth_mm"}
SEPARATORS = [",", ";", "\t"]

# Numbers as people write them: '14,23', '1.234,5' (decimal comma, '.' between thousands) ...
DECIMAL_COMMA = re.compile(r"[-+]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?")
THOUSANDS_COMMA = re.compile(r"[-+]?[1-9]\d{0,2}(,\d{3})+")  # '1,234': decimal or thousands?


class DataValidationError(ValueError):
    """The input table cannot be used; the message names the column and the problem."""


def normalize_column(name: str) -> str:
    """Turn a column header into ASCII snake_case: 'Ácido Málico (g/l)' -> 'acido_malico_g_l'."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]+", "_", ascii_name.strip().lower()).strip("_")


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_text(path: Path) -> tuple[str, str]:
    """A file's text and its encoding: UTF-8, else Windows-1252 (Excel's default on Windows)."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding), encoding.removesuffix("-sig")
        except UnicodeDecodeError:
            continue
    raise DataValidationError(
        f"data file is neither UTF-8 nor Windows-1252 text: {path}; save it as 'CSV UTF-8'"
    )


def sniff_separator(text: str) -> str:
    """The separator the header line uses most: ',' (default), ';' (Excel pt-BR) or a tab."""
    header = text.lstrip().split("\n", 1)[0]
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])  # ties go to the first: ','
    return best if counts[best] else ","


def decimal_comma_columns(df: pd.DataFrame, separator: str) -> list[str]:
    """Columns of numbers written with a decimal comma ('14,23', '1.234,5'), to read as numbers.

    Once one column has a decimal comma, '.' in the others is a thousands separator ('1.065').
    In a comma-separated file, a column of '1,234'-like values alone is ambiguous and refused.
    """
    present = {col: df[col].dropna() for col in df.columns}
    candidates = [
        col
        for col, values in present.items()
        if len(values) and values.str.fullmatch(DECIMAL_COMMA).all()
    ]
    with_comma = [col for col in candidates if present[col].str.contains(",").any()]
    if not with_comma:
        return []
    if separator == ",":
        clear = [c for c in with_comma if not _all_thousands_like(present[c])]
        if not clear:
            examples = ", ".join(repr(v) for v in present[with_comma[0]].head(3))
            raise DataValidationError(
                f"column '{with_comma[0]}' has numbers like {examples}: the comma could be a "
                "decimal comma or a thousands separator; write the numbers with a decimal "
                "point and no thousands separator (or save the file with ';' between columns)"
            )
    return [c for c in candidates if present[c].str.contains("[.,]").any()]


def _all_thousands_like(values: pd.Series) -> bool:
    commas = values[values.str.contains(",")]
    return bool(
        commas.str.fullmatch(THOUSANDS_COMMA).all() and not values.str.contains(r"\.").any()
    )


def parse_csv_text(text: str, separator: str) -> pd.DataFrame:
    """CSV text as the kit reads it: every value as text, its missing markers, no padding."""
    return pd.read_csv(
        io.StringIO(text),
        sep=separator,
        dtype=str,
        na_values=MISSING_MARKERS,
        keep_default_na=False,
        skipinitialspace=True,
    )


def load_raw(path: Path | str) -> pd.DataFrame:
    """Read a CSV as text, with normalized column names; missing markers become NA.

    Reads ',', ';' or tab separated files in UTF-8 or Windows-1252; numbers written with a
    decimal comma become plain numbers. How the file was read is in `df.attrs["read_as"]`; the
    file's own header of each renamed column in `df.attrs["file_headers"]` (none for the penguins,
    whose measurements the kit names its own way), of every column in `df.attrs["file_columns"]`.
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"data file not found: {path}")
    if path.is_dir():
        raise DataValidationError(f"data path is a folder, not a CSV file: {path}")
    text, encoding = read_text(path)
    if not text.strip():
        raise DataValidationError(f"data file is empty: {path}")
    separator = sniff_separator(text)
    try:
        df = parse_csv_text(text, separator)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(f"data file is empty: {path}") from exc
    except pd.errors.ParserError as exc:
        raise DataValidationError(f"data file is not a readable CSV: {path} ({exc})") from exc
    normalized = [normalize_column(c) for c in df.columns]
    dupes = sorted({c for c in normalized if normalized.count(c) > 1})
    if dupes:
        raise DataValidationError(f"columns collide after normalizing names: {', '.join(dupes)}")
    headers = {n: str(o).strip() for o, n in zip(df.columns, normalized, strict=True)}
    df.columns = normalized
    # every column's header as in the file (a row sent as the file has it uses these)
    df.attrs["file_columns"] = dict(headers)
    if is_penguins_raw(df):
        df = df.rename(columns=PENGUIN_RENAMES)
        df.attrs["file_columns"] = {PENGUIN_RENAMES.get(n, n): h for n, h in headers.items()}
        headers = {}  # the kit's talk names the penguin measurements its own way
    for col in df.columns:
        df[col] = df[col].str.strip()
    converted = decimal_comma_columns(df, separator)
    for col in converted:
        df[col] = df[col].str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    df.attrs["read_as"] = {
        "encoding": encoding,
        "separator": separator,
        "decimal_comma_columns": converted,
    }
    # the header each column had in the file, where it differs from the kit's name
    df.attrs["file_headers"] = {n: h for n, h in headers.items() if h != n}
    return df


def is_penguins_raw(df: pd.DataFrame) -> bool:
    """Whether a table has the layout of the Palmer penguins raw file."""
    return {"studyname", "species", "culmen_length_mm", "date_egg"} <= set(df.columns) or {
        "studyname",
        "species",
        "bill_length_mm",
        "date_egg",
    } <= set(df.columns)


def resolve_column(df: pd.DataFrame, name: str, role: str) -> str:
    """Find a column by its given or normalized name, or fail naming what exists."""
    for candidate in (name, normalize_column(name), PENGUIN_RENAMES.get(normalize_column(name))):
        if candidate and candidate in df.columns:
            return candidate
    hint = ""
    if len(df.columns) == 1:
        hint = " (the file was read as a single column: separate its columns with ',' or ';')"
    elif role == "target":
        hint = " (name the column to predict with --target)"
    raise DataValidationError(
        f"{role} column '{name}' not found; the table has: {', '.join(df.columns)}{hint}"
    )
