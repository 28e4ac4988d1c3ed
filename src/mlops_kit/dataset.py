"""What a prepared data version is: its spec, its card, and its frames.

The data stage (``data.py``) makes them and the store (``store/datasets.py``) keeps them; both
import this module, so neither needs the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


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
