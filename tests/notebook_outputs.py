"""What an executed notebook shows, read back: its tables, its printed text, its numbers, when it ran.

Plain functions over the .ipynb JSON, so a test depends on what the audience sees and not on the
kit's module names or on cell indexes.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd


def cells(notebook: Path) -> list[dict]:
    """The notebook's cells as papermill (or nbval's committed copy) wrote them."""
    return json.loads(notebook.read_text())["cells"]


def printed(notebook: Path) -> str:
    """Everything the notebook printed (stream outputs), in order."""
    return "".join(
        "".join(output.get("text", ""))
        for cell in cells(notebook)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


class _HtmlTables(HTMLParser):
    """The rows of every <table> in a page: one list of (tag, text) per <tr>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, str]]]] = []
        self._cell: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("th", "td"):
            self._cell = (tag, [])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            kind, text = self._cell
            self.tables[-1][-1].append((kind, " ".join("".join(text).split())))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1].append(data)


def _frame(rows: list[list[tuple[str, str]]]) -> pd.DataFrame:
    """A pandas HTML table as a DataFrame of text: the header's first row, the <th> as index."""
    header, *body = rows
    body = [row for row in body if any(kind == "td" for kind, _ in row)]  # not an index-name row
    index = [" ".join(text for kind, text in row if kind == "th") for row in body]
    values = [[text for kind, text in row if kind == "td"] for row in body]
    columns = [text for _, text in header][-len(values[0]) :] if values else []
    return pd.DataFrame(values, index=index, columns=columns)


def tables(notebook: Path) -> list[pd.DataFrame]:
    """Every table the notebook shows (its HTML outputs), in order, cells as the text on screen."""
    found = []
    for cell in cells(notebook):
        for output in cell.get("outputs", []):
            html = "".join(output.get("data", {}).get("text/html", ""))
            if "<table" in html:
                parser = _HtmlTables()
                parser.feed(html)
                found.extend(_frame(rows) for rows in parser.tables if rows)
    return found


def tables_with(notebook: Path, *labels: str) -> list[pd.DataFrame]:
    """The tables whose columns or row labels include all these labels, in the order shown."""
    return [t for t in tables(notebook) if set(labels) <= set(t.columns) | set(t.index.astype(str))]


def number(text: str) -> float:
    """A number as the notebooks write it: '0,9691', '1', '30%', '2,8e-08'; '—' or '-' is NaN."""
    text = text.strip()
    if text in ("—", "-", ""):
        return math.nan
    if text.endswith("%"):
        return float(text[:-1].replace(",", ".")) / 100
    return float(text.replace(",", "."))


def version(text: str) -> str:
    """The model version in 'v12', '12' or 'penguins-classifier v12'."""
    match = re.search(r"(\d+)\s*$", text.strip())
    assert match, f"no version in {text!r}"
    return match.group(1)


def ran_between(notebook: Path) -> tuple[datetime, datetime]:
    """When papermill started and finished executing the notebook (timezone-aware)."""
    meta = json.loads(notebook.read_text())["metadata"]["papermill"]
    return datetime.fromisoformat(meta["start_time"]), datetime.fromisoformat(meta["end_time"])
