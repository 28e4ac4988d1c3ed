"""JSON text for many rows at once: one encoder call per column, one template fill per row.

Rendering a 10,000-record answer as 10,000 dicts and encoding them costs more than scoring the
records. Here every column is encoded in one call (numbers) or once per distinct value (text), and
each row's object is one ``%`` fill of a template built from the keys. The text is the same as
``pydantic_core.to_json`` gives for the equivalent dict (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pydantic_core

_BETWEEN = ", \t\n\r["  # JSON that may precede a record's opening brace in a body


def dumps(value: object) -> str:
    """One value as compact JSON text."""
    return pydantic_core.to_json(value).decode()


def number_texts(values: np.ndarray | Sequence[float]) -> list[str]:
    """JSON text of each finite number (one encoder call for the whole column)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if not items:
        return []
    return dumps(items)[1:-1].split(",")  # numbers contain no commas


def value_texts(values: Sequence[str | None]) -> list[str]:
    """JSON text of each string or null, encoding every distinct value once."""
    known = {v: dumps(v) for v in set(values)}
    return list(map(known.__getitem__, values))


def column_texts(values: np.ndarray | Sequence[Any]) -> list[str]:
    """JSON text of each value of a column: numbers in one call, text once per distinct value."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f" and np.isfinite(values).all():
        return number_texts(values)
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    kinds = set(map(type, items))
    if kinds <= {float, int} and _finite(items):
        return number_texts(items)
    if kinds <= {str, type(None)}:
        return value_texts(items)
    return [dumps(v) for v in items]


def _finite(numbers: list[float]) -> bool:
    try:
        return bool(np.isfinite(np.asarray(numbers, dtype=np.float64)).all())
    except OverflowError:  # an integer beyond float range
        return False


def template(fields: Sequence[tuple[str, Any]]) -> str:
    """A ``%`` template of a JSON object from (key, value) pairs.

    A value is None (filled per row), a list of pairs (a nested object), or constant JSON text.
    """
    parts = []
    for key, value in fields:
        if value is None:
            text = "%s"
        elif isinstance(value, list):
            text = template(value)
        else:
            text = value.replace("%", "%%")
        parts.append(dumps(key).replace("%", "%%") + ":" + text)
    return "{" + ",".join(parts) + "}"


def object_texts(columns: Mapping[str, Sequence[str]]) -> list[str]:
    """JSON objects, one per row, from columns of JSON texts (keys in the mapping's order)."""
    fill = template([(key, None) for key in columns]).__mod__
    return list(map(fill, zip(*columns.values(), strict=True)))


def records_texts(columns: Mapping[str, np.ndarray | Sequence[Any]]) -> list[str]:
    """Each record as a JSON object, from its values given column-wise."""
    return object_texts({name: column_texts(values) for name, values in columns.items()})


def brace_free(columns: Mapping[str, np.ndarray | Sequence[Any]]) -> bool:
    """True when no key and no text value of the records holds a brace."""
    texts = list(columns)
    for values in columns.values():
        if not isinstance(values, np.ndarray):
            texts.extend(v for v in set(values) if isinstance(v, str))
    return not any("{" in text or "}" in text for text in texts)


def cut_records(body: bytes, rows: int) -> list[str] | None:
    """The flat JSON objects of a body (one object, or an array of them) as sent; None if unsure.

    Only for validated bodies whose keys and values hold no brace (``brace_free``): then every
    ``}`` ends a record, and what lies between records is only commas, whitespace and ``[``.
    """
    try:
        pieces = body.decode().split("}")
    except UnicodeDecodeError:
        return None
    if len(pieces) != rows + 1:
        return None
    del pieces[-1]
    records = list(map(str.__add__, map(str.lstrip, pieces, repeat(_BETWEEN)), repeat("}")))
    return records if all(map(str.startswith, records, repeat("{"))) else None
