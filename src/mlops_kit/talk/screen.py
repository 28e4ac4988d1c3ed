"""What the audience reads on screen: tables shown whole, in Portuguese, with decimal commas.

The library's tables and sentences are in English (the CLI's language); a notebook shows them
through ``show`` (a table, a dict) and ``say`` (a sentence), which put them in the words of
``portuguese.py``, write numbers for people (``0,97``) and drop the meaningless 0..n row numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mlops_kit.talk.portuguese import COMPILED, LABELS, SEPARATORS

DECIMAL_POINT = re.compile(r"(?<![\w.])(\d+)\.(\d+)(?![\w.]*\.\w)")  # 0.97, not 127.0.0.1


def readable_tables() -> None:
    """Show every table cell in full (pandas cuts text at 50 characters by default)."""
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", 200)


def _words(text: str) -> str:
    """Portuguese words for one label or sentence (numbers untouched); unknown text as it is."""
    if text in LABELS:
        return LABELS[text]
    for separator in SEPARATORS:
        if separator in text:
            return separator.join(_words(part) for part in text.split(separator))
    for pattern, portuguese in COMPILED:
        match = pattern.match(text)
        if match:
            return portuguese.format(**{k: _words(v) for k, v in match.groupdict().items()})
    return text


def number(value: float) -> str:
    """A number as people write it here: decimal comma (0,97); missing as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:g}".replace(".", ",") if isinstance(value, float) else str(value)


def say(text: object) -> str:
    """A sentence of the kit in Portuguese, numbers with a decimal comma."""
    return DECIMAL_POINT.sub(r"\1,\2", _words(str(text)))


def counts(values: Mapping[str, int]) -> str:
    """Counts by name in words: {'no_measurements': 2} -> 'sem medidas: 2'."""
    return ", ".join(f"{say(name)}: {n}" for name, n in values.items()) or LABELS["none"]


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return LABELS[str(value)]
    if isinstance(value, float):
        return number(value)
    if isinstance(value, str):
        return say(value)
    return value


def show(table: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    """A table as the audience reads it: Portuguese labels and values, decimal commas, no 0..n."""
    if isinstance(table, Mapping):
        table = pd.DataFrame({"": list(table.values())}, index=list(table.keys()))
    frame = table.copy()
    if list(frame.columns) == ["item", "value"]:  # the kit's two-column summaries
        frame = frame.set_index("item").rename(columns={"value": ""})
        frame.index.name = None
    elif isinstance(frame.index, pd.RangeIndex) and frame.index.name is None:  # just 0..n
        frame.index = [""] * len(frame)
    frame = frame.astype(object).map(_cell)
    frame.columns = [say(c) for c in frame.columns]
    frame.index = [say(i) if isinstance(i, str) else i for i in frame.index]
    if table.index.name is not None:
        frame.index.name = say(table.index.name)
    return frame
