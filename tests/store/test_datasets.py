"""Data versions: written once with their card, read back with the same values and dtypes everywhere."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlops_kit import registry
from mlops_kit.data import prepare
from mlops_kit.monitoring.reference import reference_for
from mlops_kit.store import datasets
from tests.helpers import iris_like, table_spec


def test_a_version_reads_back_as_it_was_prepared(settings):
    prepared = prepare(settings.table, settings)
    loaded = datasets.load_version(settings, prepared.card.data_version)

    assert loaded.spec == prepared.spec
    assert loaded.card.to_dict() == json.loads(
        (settings.data_dir / prepared.card.data_version / "card.json").read_text()
    )
    for name in ("clean", "train", "eval"):  # the same values; the dtypes are checked below
        pd.testing.assert_frame_equal(
            getattr(loaded, name), getattr(prepared, name), check_dtype=False
        )
    train = loaded.train
    assert all(train[c].dtype == "float64" for c in loaded.spec.numeric)  # whole numbers too
    assert train["sex"].dtype == object and train["sex"].isna().any()
    assert all(isinstance(v, str) or (isinstance(v, float) and np.isnan(v)) for v in train["sex"])
    assert train["species"].map(type).eq(str).all()


def test_only_an_empty_field_is_missing_when_read_back(settings, write_csv):
    table = iris_like()
    table["Garden"] = np.where(np.arange(len(table)) % 3 == 0, "None", "north")
    table.loc[1, "Garden"] = ""
    table["Kind"] = table["Kind"].map({"setosa": "1", "versicolor": "2", "virginica": "3"})
    prepared = prepare(
        table_spec(
            data_path=write_csv(table),
            target="Kind",
            features=["Sepal Length", "Garden"],
            split_column=None,
        ),
        settings,
    )
    loaded = datasets.load_version(settings, prepared.card.data_version)

    garden = loaded.clean["garden"]
    assert (garden == "None").sum() == 30  # a category named None is not a missing value
    assert garden.isna().sum() == 1
    assert set(loaded.clean["kind"]) == {"1", "2", "3"}  # class names stay text
    assert loaded.spec.split_column is None  # a seeded random split
    pd.testing.assert_frame_equal(loaded.clean, prepared.clean)


def test_an_unknown_version_is_refused_naming_the_catalogue(settings):
    with pytest.raises(ValueError, match="data version nope is not in the catalogue at "):
        datasets.load_version(settings, "nope")
    assert not datasets.has_version(settings, "")


def test_a_version_with_lineage_and_the_catalogue(settings):
    prepared = prepare(settings.table, settings)
    version = prepared.card.data_version
    card_path = datasets.write_version(prepared, settings, lineage={"parent_data_version": "x"})

    assert card_path == settings.data_dir / version / "card.json"
    assert json.loads((card_path.parent / "lineage.json").read_text()) == {
        "parent_data_version": "x"
    }
    assert [e["data_version"] for e in datasets.catalogue(settings)] == [version]  # not twice
    assert not list(settings.data_dir.rglob("*.tmp"))  # atomic writes leave nothing behind


def test_monitoring_and_retraining_read_the_champions_version_the_same_way(use_trained):
    settings = use_trained.settings
    version = use_trained.result.prepared.card.data_version

    reference = reference_for(settings, "1")
    _, champion = registry.champion_data(settings)

    assert reference.data_version == champion.card.data_version == version
    pd.testing.assert_frame_equal(reference.frame, champion.train)
    pd.testing.assert_frame_equal(
        champion.train, use_trained.result.prepared.train, check_dtype=False
    )


def test_the_store_imports_nothing_heavy_from_the_training_side():
    code = (
        "import sys, mlops_kit.store.datasets, mlops_kit.store.reviews, mlops_kit.store.lock\n"
        "print(sorted(m for m in ('sklearn', 'mlflow', 'scipy', 'mlops_kit.train',"
        " 'mlops_kit.registry', 'mlops_kit.serving') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
