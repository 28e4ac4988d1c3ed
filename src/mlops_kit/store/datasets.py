"""Data versions: one writer and one reader for a version's tables and card, and the catalogue.

A version lives in ``<workspace>/data/<version>/``: ``clean.csv``, ``train.csv``, ``eval.csv`` and
``card.json`` (plus ``lineage.json`` for a version made by retraining); ``catalog.json`` lists the
versions. Training, monitoring and retraining read a version only through ``load_version``, so it
comes back with the same dtypes everywhere: numeric features as float, categorical features as
text with NaN for a missing value, the target as text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_kit.config import Settings, display_path
from mlops_kit.dataset import DataCard, DatasetSpec, PreparedData
from mlops_kit.store.files import atomic_write
from mlops_kit.store.lock import workspace_lock

TABLES = ("clean", "train", "eval")


def version_dir(settings: Settings, data_version: str) -> Path:
    """The folder of one data version."""
    return settings.data_dir / data_version


def catalogue_path(settings: Settings) -> Path:
    """The catalogue of data versions."""
    return settings.data_dir / "catalog.json"


def has_version(settings: Settings, data_version: str) -> bool:
    """True when the version's card is in the workspace."""
    return bool(data_version) and (version_dir(settings, data_version) / "card.json").exists()


def catalogue(settings: Settings) -> list[dict[str, object]]:
    """The catalogued versions, oldest first."""
    path = catalogue_path(settings)
    return json.loads(path.read_text()) if path.exists() else []


def _json(content: object) -> str:
    return json.dumps(content, indent=2, ensure_ascii=False)


def write_version(
    prepared: PreparedData, settings: Settings, lineage: dict[str, object] | None = None
) -> Path:
    """Write a version's tables, card (and lineage), add it to the catalogue; return the card path."""
    folder = version_dir(settings, prepared.card.data_version)
    with workspace_lock(settings, "writing a data version"):
        for name in TABLES:
            target = folder / f"{name}.csv"
            atomic_write(target, getattr(prepared, name).to_csv(index=False))
            prepared.card.files[name] = display_path(target)
        card_path = atomic_write(folder / "card.json", _json(prepared.card.to_dict()))
        if lineage is not None:
            atomic_write(folder / "lineage.json", _json(lineage))
        entries = catalogue(settings)
        if not any(e["data_version"] == prepared.card.data_version for e in entries):
            entries.append(
                {
                    "data_version": prepared.card.data_version,
                    "created_at": prepared.card.created_at,
                    "source": prepared.card.source,
                    "rows": prepared.card.rows_clean,
                    "card": display_path(card_path),
                }
            )
            atomic_write(catalogue_path(settings), _json(entries))
    return card_path


def spec_of(card: DataCard) -> DatasetSpec:
    """The dataset spec a card records (a random split has no split column)."""
    by = card.split.get("by")
    return DatasetSpec(
        card.target,
        list(card.numeric_features),
        list(card.categorical_features),
        None if by in (None, "random") else str(by),
    )


def read_table(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """One of a version's CSV tables with the kit's dtypes; only an empty field is missing."""
    text_columns = {c: str for c in [*spec.categorical, spec.target]}
    frame = pd.read_csv(path, dtype=text_columns, keep_default_na=False, na_values=[""])
    for col in spec.numeric:
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    for col in spec.categorical:
        frame[col] = frame[col].astype(object).where(frame[col].notna(), np.nan)
    frame[spec.target] = frame[spec.target].astype(str)
    return frame


def load_version(settings: Settings, data_version: str) -> PreparedData:
    """A catalogued data version read back: clean, train and eval tables, its spec and card."""
    folder = version_dir(settings, data_version)
    if not has_version(settings, data_version):
        raise ValueError(
            f"data version {data_version} is not in the catalogue at "
            f"{display_path(settings.data_dir)}"
        )
    card = DataCard(**json.loads((folder / "card.json").read_text()))
    spec = spec_of(card)
    tables = {name: read_table(folder / f"{name}.csv", spec) for name in TABLES}
    return PreparedData(tables["clean"], tables["train"], tables["eval"], spec, card)
