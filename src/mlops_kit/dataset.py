"""What a prepared data version is: its spec, its card, and its frames.

The data stage (``data.py``) makes them and the store (``store/datasets.py``) keeps them; both
import this module, so neither needs the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd

ORIGIN = "origin"  # where a row comes from: the original table, or a labelled production case
SEASON, PRODUCTION = "season", "production"


@dataclass(frozen=True)
class DatasetSpec:
    """What to predict from what, and how to split: the user-facing parameters of the data stage."""

    target: str
    numeric: list[str]
    categorical: list[str]
    split_column: str | None = None

    @property
    def features(self) -> list[str]:
        """All feature columns, numeric first."""
        return [*self.numeric, *self.categorical]


@dataclass
class DataCard:
    """The catalogue entry of one data version: what went in, what came out, how it was split."""

    data_version: str
    source: str
    source_sha256: str
    created_at: str
    target: str
    numeric_features: list[str]
    categorical_features: list[str]
    rows_raw: int
    rows_clean: int
    rows_dropped: dict[str, int]
    columns: dict[str, dict[str, object]]
    class_balance: dict[str, int]
    split: dict[str, object]
    files: dict[str, str] = field(default_factory=dict)
    excluded_columns: dict[str, str] = field(default_factory=dict)  # column -> why not a feature
    read_as: dict[str, object] = field(default_factory=dict)  # encoding, separator, decimal comma
    file_headers: dict[str, str] = field(default_factory=dict)  # column -> its header in the file
    # the file's columns that are not features (left out, target, split, others): column -> header
    other_columns: dict[str, str] = field(default_factory=dict)
    record_key: str | None = None  # the column that tells records apart (an identifier), if any

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def counts(values: pd.Series) -> dict[str, int]:
    """Rows per value, sorted by value: a class balance."""
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


def describe_columns(df: pd.DataFrame, spec: DatasetSpec) -> dict[str, dict[str, object]]:
    """Per-column facts for the data card: kind, missing count, range or categories."""
    facts: dict[str, dict[str, object]] = {}
    for col in [*spec.features, spec.target]:
        entry: dict[str, object] = {"missing": int(df[col].isna().sum())}
        if col in spec.numeric:
            entry.update(kind="numeric", min=float(df[col].min()), max=float(df[col].max()))
        else:
            entry.update(
                kind="target" if col == spec.target else "categorical",
                values=sorted(str(v) for v in df[col].dropna().unique()),
            )
        facts[col] = entry
    return facts


def make_card(
    clean: pd.DataFrame,
    spec: DatasetSpec,
    *,
    data_version: str,
    source: str,
    source_sha256: str,
    rows_raw: int,
    rows_dropped: dict[str, int],
    split: dict[str, object],
    excluded_columns: dict[str, str] | None = None,
    read_as: dict[str, object] | None = None,
    file_headers: dict[str, str] | None = None,
    other_columns: dict[str, str] | None = None,
    record_key: str | None = None,
) -> DataCard:
    """The card of a clean data version: its columns and classes described from the table."""
    return DataCard(
        data_version=data_version,
        source=source,
        source_sha256=source_sha256,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        target=spec.target,
        numeric_features=spec.numeric,
        categorical_features=spec.categorical,
        rows_raw=rows_raw,
        rows_clean=len(clean),
        rows_dropped=rows_dropped,
        columns=describe_columns(clean, spec),
        class_balance=counts(clean[spec.target]),
        split=split,
        excluded_columns=dict(excluded_columns or {}),
        read_as=dict(read_as or {}),
        file_headers=dict(file_headers or {}),
        other_columns=dict(other_columns or {}),
        record_key=record_key,
    )


@dataclass
class PreparedData:
    """The output of the data stage: clean table, the two splits, the spec and the card."""

    clean: pd.DataFrame
    train: pd.DataFrame
    eval: pd.DataFrame
    spec: DatasetSpec
    card: DataCard

    @property
    def X_train(self) -> pd.DataFrame:  # noqa: N802 - the field's usual name
        """Training features."""
        return self.train[self.spec.features]

    @property
    def y_train(self) -> pd.Series:
        """Training labels."""
        return self.train[self.spec.target]

    @property
    def X_eval(self) -> pd.DataFrame:  # noqa: N802
        """Held-out evaluation features."""
        return self.eval[self.spec.features]

    @property
    def y_eval(self) -> pd.Series:
        """Held-out evaluation labels."""
        return self.eval[self.spec.target]
