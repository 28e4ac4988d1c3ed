"""Tracking: the data inputs MLflow records carry the schema MLflow itself would infer."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.data.sources import LocalArtifactDatasetSource
from sklearn.datasets import load_wine

from mlops_kit import tracking
from mlops_kit.config import Settings
from mlops_kit.data import prepare


def awkward(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Columns of every kind, their missing values and odd types deep in the table."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "number": rng.normal(size=rows),
            "whole": rng.integers(0, 9, rows),
            "flag": rng.random(rows) < 0.5,
            "when": pd.date_range("2026-01-01", periods=rows, freq="h"),
            "text": rng.choice(["Biscoe", "Dream", "Torgersen"], rows).astype(object),
            "category": pd.Categorical(rng.choice(["a", "b"], rows)),
            "all missing": [None] * rows,
        }
    )
    frame.loc[rows - 7, "number"] = np.nan  # missing only near the end
    frame.loc[rows - 5, "text"] = None
    mixed = frame["text"].astype(object)
    mixed.loc[rows - 3] = 42  # one number among the texts, late
    frame["mixed"] = mixed
    return frame


TABLES = {
    "penguins": lambda: prepare(Settings().table, Settings(), write=False).train,
    "wine": lambda: load_wine(as_frame=True).frame,
    "awkward": awkward,
    "one row": lambda: awkward().iloc[:1],
    "empty": lambda: awkward().iloc[:0],
}


@pytest.mark.parametrize("table", TABLES)
def test_the_dataset_schema_is_what_mlflow_infers_from_the_whole_table(table: str) -> None:
    frame = TABLES[table]()
    source = LocalArtifactDatasetSource("data.csv")
    ours = tracking.TableDataset(frame, source=source, name="t", digest="d").schema
    assert ours == mlflow.data.from_pandas(frame, source=source, digest="d").schema
    assert len(tracking.schema_rows(frame)) <= max(1, len(frame))


def test_schema_rows_are_few_for_a_long_table() -> None:
    assert len(tracking.schema_rows(awkward(rows=100_000))) < 10
