"""Validate a table: per row, the reason the API would refuse it, or None where it would score it.

The rules are the API's (``scoring.inputs.InputField``), applied column by column with numpy so a
chunk of a million rows takes well under a second: a number input needs a finite number (a file's
text "46.5" is one; an empty cell, a word or "inf" is not); a category input needs one of the
model's categories, or nothing (imputed); a text input takes any value. Columns are found by the
model's name, the header the model's training file had, or that header normalised as the kit reads
files. A table without one of the model's input columns at all is not a per-row problem: it is
refused as a whole (``MissingInputs``), naming the columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops_kit.scoring.errors import show
from mlops_kit.scoring.inputs import InputField, RequestModels
from mlops_kit.tables import MISSING_MARKERS, PENGUIN_RENAMES, normalize_column

# the reason of a row that passed validation but that the model cannot score (scoring.score)
NOT_SCORABLE = (
    "the model cannot score these values (its probabilities are not finite); check the units "
    "and magnitudes of the measurements"
)


class MissingInputs(ValueError):
    """The table lacks one or more of the model's input columns entirely."""


def find_columns(columns: Iterable[str], inputs: RequestModels) -> dict[str, str]:
    """The table's column of each model input: {model name: table column}; or MissingInputs."""
    columns = list(columns)
    normalised: dict[str, str] = {}
    for column in columns:
        name = normalize_column(column)
        normalised.setdefault(PENGUIN_RENAMES.get(name, name), column)
    found, missing = {}, []
    for f in inputs.fields:
        column = next((c for c in (f.name, f.header) if c and c in columns), None)
        column = column or normalised.get(f.name)
        if column is None:
            missing.append(f)
        else:
            found[f.name] = column
    if missing:
        names = ", ".join(repr(f.shown) for f in missing)
        optional = [f.shown for f in missing if not f.required]
        note = (
            f" ({', '.join(optional)} may be empty on every row, but the column must be there)"
            if optional
            else ""
        )
        raise MissingInputs(
            f"the table has no column {names}, which the model needs{note}; its columns are: "
            f"{', '.join(columns)}. The model's inputs are: {inputs.listing}. Add the column or "
            "rename the one that holds it"
        )
    return found


@dataclass(frozen=True)
class Checked:
    """A validated chunk: the model's input frame for every row and the reason of each refused row."""

    features: pd.DataFrame  # as ``scoring.inputs.model_frame`` builds it; rows refused hold NaN
    reasons: pd.Series  # None: the API would score the row

    @property
    def valid(self) -> np.ndarray:
        """Rows the API would score."""
        return self.reasons.isna().to_numpy()


def _strings(series: pd.Series) -> pd.Series:
    """Values as stripped text (pandas' Arrow-backed str), missing markers ('', NA, ...) as NA."""
    text = series if series.dtype == "str" else series.astype("str")
    text = text.str.strip()
    return text.mask(text.isin(MISSING_MARKERS))


def _objects(text: pd.Series) -> np.ndarray:
    """Text as the object array the model's pipeline takes: str, NaN where missing."""
    return text.to_numpy(dtype=object, na_value=np.nan)


def _parse_numbers(text: pd.Series) -> np.ndarray:
    """float64 of each text value; NaN where missing or not a number."""
    try:  # Arrow's parser: ~30 ms per million values; refuses the whole column at one bad value
        return pc.cast(pa.array(text), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


Problems = list[tuple[np.ndarray, list[str]]]


def _number(series: pd.Series, shown: str) -> tuple[np.ndarray, Problems]:
    """float64 values and the problems: (rows, messages)."""
    problems: Problems = []
    text = None
    if series.dtype == bool or str(series.dtype) == "boolean":
        rows = np.flatnonzero(series.notna().to_numpy())
        values = np.full(len(series), np.nan)
        messages = [f"'{shown}' must be a number, got a boolean {series.iloc[i]}" for i in rows]
        problems.append((rows, messages))
        missing = series.isna().to_numpy()
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
    else:
        text = _strings(series)
        missing = text.isna().to_numpy()
        values = _parse_numbers(text)
        words = np.flatnonzero(~missing & np.isnan(values))
        if len(words):
            messages = [
                f"'{shown}' must be a number, got the text {show(text.iloc[i])}" for i in words
            ]
            problems.append((words, messages))
    values = np.array(values, dtype=np.float64)  # a writable copy
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        written = text if text is not None else pd.Series(values)
        messages = [
            f"'{shown}' must be a finite number, got {show(written.iloc[i])}" for i in infinite
        ]
        problems.append((infinite, messages))
        values[infinite] = np.nan
    absent = np.flatnonzero(missing)
    if len(absent):
        message = f"'{shown}' is missing (required, a finite number)"
        problems.append((absent, [message] * len(absent)))
    return values, problems


def _category(series: pd.Series, field: InputField, shown: str) -> tuple[np.ndarray, Problems]:
    """Object values (NaN where missing) and the rows with a category the model does not know."""
    text = _strings(series)
    unknown = np.flatnonzero((text.notna() & ~text.isin(field.categories)).to_numpy())
    known = ", ".join(field.categories)
    messages = [
        f"'{shown}' has an unknown category {show(text.iloc[i])}; the model knows: {known}"
        for i in unknown
    ]
    return _objects(text), [(unknown, messages)] if len(unknown) else []


def check(
    frame: pd.DataFrame, inputs: RequestModels, columns: dict[str, str] | None = None
) -> Checked:
    """Validate every row of a table the way the API validates a record; `columns` from find_columns."""
    columns = columns if columns is not None else find_columns(frame.columns, inputs)
    n = len(frame)
    features: dict[str, object] = {}
    reasons = np.full(n, None, dtype=object)
    for f in inputs.fields:
        series, shown = frame[columns[f.name]], columns[f.name]
        if f.kind == "number":
            values, problems = _number(series, shown)
        elif f.kind == "category":
            values, problems = _category(series, f, shown)
        else:
            values, problems = _objects(_strings(series)), []
        features[f.name] = values
        for rows, messages in problems:
            for row, message in zip(rows.tolist(), messages, strict=True):
                reasons[row] = message if reasons[row] is None else f"{reasons[row]}; {message}"
    model = pd.DataFrame(
        {
            f.name: features[f.name]
            if f.kind == "number"
            else pd.Series(features[f.name], dtype=object)
            for f in inputs.fields
        },
        columns=inputs.names,
    )
    return Checked(model, pd.Series(reasons, index=frame.index, dtype=object))


def reasons(frame: pd.DataFrame, inputs: RequestModels) -> pd.Series:
    """Per row, None when the API would accept the row, else a one-line reason naming the column."""
    return check(frame, inputs).reasons
