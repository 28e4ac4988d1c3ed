"""Shifts: the ways the field changes, applied to held-out records before they are sent.

A number read too high (``add:COLUMN``), a category turning up more often (``mix:COLUMN=VALUE``),
or one of the penguins' stories (``PRESETS``: calliper, scale, colony). A shift changes what is
sent; the true class (``TRUTH``) stays as it was, except in the colony story, where new birds come.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mlops_kit.tables import normalize_column

TRUTH = "truth"  # column with the true class of a record (kept aside, never sent)


@dataclass(frozen=True)
class Shift:
    """A change in the field: the columns it touches, how, and what `amount` measures.

    kind "add": `amount` is added to numeric columns (a miscalibrated instrument); "mix": a share
    `amount` of the records take the category `value` in a column (a new site, a new supplier);
    "colony": the penguins' story of Chinstraps turning up on Biscoe (records and truth change).
    """

    name: str
    kind: Literal["none", "add", "mix", "colony"]
    columns: tuple[str, ...] = ()
    value: str | None = None
    unit: str = ""
    default: float | None = None  # None: worked out from the records (two standard deviations)
    story: str = ""

    def describe(self, amount: float) -> str:
        """The shift in words, with its amount."""
        if self.story:
            return self.story.replace("`amount`", f"{amount:g}")
        if self.kind == "add":
            return f"{', '.join(self.columns)} read{'' if len(self.columns) > 1 else 's'} {amount:g} more"
        if self.kind == "mix":
            return (
                f"a share of {amount:g} of the records come with {self.columns[0]} = {self.value}"
            )
        return "no change: records as held out"


PRESETS: dict[
    str, Shift
] = {  # the penguins' stories; any table has add:COLUMN and mix:COLUMN=VALUE
    s.name: s
    for s in (
        Shift(
            "none", "none", default=0.0, story="no change: records as measured in the newest season"
        ),
        Shift(
            "calliper",
            "add",
            ("bill_length_mm", "bill_depth_mm"),
            unit="mm",
            default=5.0,
            story="a calliper zeroed wrong: bill length and bill depth read `amount` mm too much",
        ),
        Shift(
            "scale",
            "add",
            ("body_mass_g",),
            unit="g",
            default=500.0,
            story="a scale that lost its tare: body mass reads `amount` g too much",
        ),
        Shift(
            "colony",
            "colony",
            ("island", TRUTH),
            unit="share",
            default=0.5,
            story="a new Chinstrap colony on Biscoe, where the model never saw one, sends a share "
            "of `amount` of the records",
        ),
    )
}
HOW = (
    "none, a preset (calliper, scale, colony), add:COLUMN (a number) or mix:COLUMN=VALUE (a share)"
)


def _column(records: pd.DataFrame, given: str) -> str:
    """A column of the records by its name or its file header's normalised form."""
    for name in (given, normalize_column(given)):
        if name in records.columns and name not in (TRUTH, "source_row"):
            return name
    features = [c for c in records.columns if c not in (TRUTH, "source_row")]
    raise ValueError(
        f"the shift names column '{given}', which the records lack; they have: "
        f"{', '.join(features)}"
    )


def parse_shift(text: str, records: pd.DataFrame) -> Shift:
    """A shift as written (a preset name, add:COLUMN, mix:COLUMN=VALUE), checked against the records."""
    text = (text or "none").strip()
    if text in PRESETS:
        shift = PRESETS[text]
        missing = [c for c in shift.columns if c not in records.columns]
        if missing:
            raise ValueError(
                f"the {text} shift changes column(s) this table lacks: {', '.join(missing)}; "
                "for your table use add:COLUMN or mix:COLUMN=VALUE"
            )
        return shift
    kind, _, rest = text.partition(":")
    if kind == "add" and rest:
        column = _column(records, rest.strip())
        if not pd.api.types.is_numeric_dtype(records[column]):
            raise ValueError(
                f"add:{column} needs a numeric column; '{column}' holds categories: "
                f"use mix:{column}=VALUE"
            )
        return Shift(text, "add", (column,))
    if kind == "mix" and "=" in rest:
        given, _, value = rest.partition("=")
        column = _column(records, given.strip())
        if pd.api.types.is_numeric_dtype(records[column]):
            raise ValueError(
                f"mix:{column}=… needs a categorical column; '{column}' holds numbers: "
                f"use add:{column}"
            )
        known = sorted(records[column].dropna().astype(str).unique())
        if value.strip() not in known:
            raise ValueError(
                f"'{value.strip()}' is not a category of {column} the model knows; "
                f"choose from: {', '.join(known)}"
            )
        return Shift(text, "mix", (column,), value=value.strip(), unit="share", default=0.5)
    raise ValueError(f"unknown shift '{text}'; choose from: {HOW}")


def default_shift(records: pd.DataFrame) -> str:
    """The shift notebook 04 shows when none is given: calliper on the penguins; on another table,
    its first numeric column read two standard deviations too high, or the mix of its first
    categorical column moved to its rarest category."""
    if all(c in records.columns for c in PRESETS["calliper"].columns):
        return "calliper"
    features = [c for c in records.columns if c not in (TRUTH, "source_row")]
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(records[c])]
    if numeric:
        return f"add:{numeric[0]}"
    column = features[0]
    rarest = records[column].dropna().astype(str).value_counts(ascending=True).index[0]
    return f"mix:{column}={rarest}"


def shift_amount(shift: Shift, amount: float | None, records: pd.DataFrame) -> float:
    """The amount given, or the shift's default; a share must lie between 0 and 1."""
    if amount is not None:
        value = float(amount)
    elif shift.default is not None:
        value = shift.default
    else:  # add:COLUMN with no amount: two standard deviations of the column, rounded
        spread = float(records[shift.columns[0]].std())
        value = float(f"{2 * spread:.2g}") if np.isfinite(spread) and spread > 0 else 1.0
    if shift.unit == "share" and not 0.0 <= value <= 1.0:
        raise ValueError(f"the {shift.name} shift's amount is a share between 0 and 1, not {value}")
    return value


def apply_shift(
    records: pd.DataFrame,
    shift: str,
    amount: float | None = None,
    rng: np.random.Generator | None = None,
    pool: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The records as the changed field would report them (truth unchanged, values rounded as sheets)."""
    pool = records if pool is None else pool
    parsed = parse_shift(shift, pool)
    value = shift_amount(parsed, amount, pool)
    out = records.copy()
    if parsed.kind == "add":
        for col in parsed.columns:
            shifted = out[col] + value
            out[col] = shifted.round(1 if parsed.unit == "mm" else 0) if parsed.unit else shifted
    elif parsed.kind == "mix":
        rng = rng or np.random.default_rng(0)
        moved = rng.random(len(out)) < value
        out.loc[moved, parsed.columns[0]] = parsed.value
    elif parsed.kind == "colony":
        rng = rng or np.random.default_rng(0)
        chinstraps = pool[pool[TRUTH] == "Chinstrap"]
        if chinstraps.empty:
            raise ValueError("the colony shift needs Chinstrap records in the season")
        moved = rng.random(len(out)) < value
        picks = chinstraps.iloc[rng.integers(0, len(chinstraps), int(moved.sum()))]
        replacement = picks.assign(island="Biscoe").set_index(out.index[moved])
        out.loc[moved, replacement.columns] = replacement
    return out
