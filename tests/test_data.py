"""Data stage: the shipped penguins table, messy and broken inputs, and a user's own CSV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_kit.config import PENGUIN_FEATURES, PENGUINS_CSV, PROJ_ROOT, get_settings
from mlops_kit.data import DataValidationError, file_sha256, prepare
from mlops_kit.tables import normalize_column
from tests.helpers import table_spec

MEASUREMENTS = ["Culmen Length (mm)", "Culmen Depth (mm)", "Flipper Length (mm)", "Body Mass (g)"]


def years(dates: pd.Series) -> set[int]:
    return set(pd.to_datetime(dates).dt.year)


# --- the shipped penguins table ---------------------------------------------------------------


def test_penguins_clean_table(settings):
    prepared = prepare(settings.table, settings)
    card = prepared.card
    assert (card.rows_raw, card.rows_clean) == (344, 342)
    assert card.rows_dropped == {"no_measurements": 2}
    assert len(prepared.clean) == 342
    assert set(prepared.clean["species"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert card.class_balance == {"Adelie": 151, "Chinstrap": 68, "Gentoo": 123}
    assert set(prepared.clean["sex"].dropna()) == {"male", "female"}
    assert prepared.clean["sex"].isna().sum() == 9  # NA in the raw file stays missing
    assert prepared.spec.features == [
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "island",
        "sex",
    ]
    assert prepared.clean[prepared.spec.numeric].dtypes.eq("float64").all()


def test_penguins_keep_their_defaults_and_leave_nothing_out(settings):
    card = prepare(settings.table, settings).card
    assert card.excluded_columns == {}
    # the raw file's other columns, named as the file names them; no column tells rows apart
    assert card.other_columns["individual_id"] == "Individual ID"
    assert card.other_columns["species"] == "Species" and len(card.other_columns) == 11
    assert not set(card.other_columns) & set(PENGUIN_FEATURES) and card.record_key is None
    assert card.read_as == {"encoding": "utf-8", "separator": ",", "decimal_comma_columns": []}


def test_penguins_split_holds_out_newest_season(settings):
    prepared = prepare(settings.table, settings)
    assert years(prepared.train["date_egg"]) == {2007, 2008}
    assert years(prepared.eval["date_egg"]) == {2009}
    assert len(prepared.train) + len(prepared.eval) == 342
    assert prepared.card.split["train_seasons"] == ["2007", "2008"]
    assert prepared.card.split["eval_seasons"] == ["2009"]
    assert prepared.card.split["eval_rows"] == len(prepared.eval) == 119


def test_data_version_is_a_content_hash(settings, penguins_raw, write_csv):
    first = prepare(settings.table, settings).card.data_version
    assert prepare(settings.table, settings).card.data_version == first
    copy = write_csv(penguins_raw, "same.csv")
    assert (
        prepare(table_spec(data_path=copy), settings).card.data_version == first
    )  # same content, other file
    penguins_raw.loc[0, "Body Mass (g)"] = "3760"
    changed = write_csv(penguins_raw, "changed.csv")
    assert prepare(table_spec(data_path=changed), settings).card.data_version != first


def test_card_and_catalogue_written_once(settings):
    prepared = prepare(settings.table, settings)
    version = prepared.card.data_version
    card_path = settings.data_dir / version / "card.json"
    card = json.loads(card_path.read_text())
    assert card["data_version"] == version
    assert card["rows_clean"] == 342
    assert card["split"]["eval_seasons"] == ["2009"]
    for name in ("clean", "train", "eval"):
        assert len(pd.read_csv(settings.data_dir / version / f"{name}.csv")) == len(
            getattr(prepared, name)
        )
    prepare(settings.table, settings)
    catalogue = json.loads((settings.data_dir / "catalog.json").read_text())
    assert [entry["data_version"] for entry in catalogue] == [version]
    assert catalogue[0]["rows"] == 342


def test_prepare_without_writing_leaves_workspace_alone(settings):
    prepare(settings.table, settings, write=False)
    assert not settings.data_dir.exists()


# --- messy input ------------------------------------------------------------------------------


def test_sex_recorded_as_dot_becomes_missing(settings, penguins_raw, write_csv):
    penguins_raw.loc[0, "Sex"] = "."
    prepared = prepare(table_spec(data_path=write_csv(penguins_raw)), settings)
    assert pd.isna(prepared.clean.loc[0, "sex"])
    assert "." not in set(prepared.clean["sex"].dropna())
    assert prepared.card.rows_clean == 342  # a missing sex is imputed later, the row stays


def test_exact_duplicate_rows_are_dropped_and_counted(settings, penguins_raw, write_csv):
    doubled = pd.concat([penguins_raw, penguins_raw.iloc[[5, 6, 7]]], ignore_index=True)
    prepared = prepare(table_spec(data_path=write_csv(doubled)), settings)
    assert prepared.card.rows_raw == 347
    assert prepared.card.rows_dropped["duplicate"] == 3
    assert prepared.card.rows_clean == 342


def test_rows_without_any_measurement_are_dropped_and_counted(settings, penguins_raw, write_csv):
    penguins_raw.loc[0, MEASUREMENTS] = "NA"
    penguins_raw.loc[1, "Body Mass (g)"] = "NA"  # one measurement missing: the row stays
    prepared = prepare(table_spec(data_path=write_csv(penguins_raw)), settings)
    assert prepared.card.rows_dropped == {"no_measurements": 3}
    assert prepared.card.rows_clean == 341
    assert prepared.clean["body_mass_g"].isna().sum() == 1


# --- broken input: each names its problem ----------------------------------------------------


def test_missing_file(settings, tmp_path):
    with pytest.raises(DataValidationError, match="not found"):
        prepare(table_spec(data_path=tmp_path / "nowhere.csv"), settings)


def test_empty_file(settings, write_csv):
    with pytest.raises(DataValidationError, match="empty"):
        prepare(table_spec(data_path=write_csv("")), settings)


def test_header_only_file(settings, penguins_raw, write_csv):
    with pytest.raises(DataValidationError, match="no rows"):
        prepare(table_spec(data_path=write_csv(penguins_raw.head(0))), settings)


def test_missing_target_column(settings, penguins_raw, write_csv):
    path = write_csv(penguins_raw.drop(columns=["Species"]))
    with pytest.raises(DataValidationError, match="target column 'species' not found"):
        prepare(table_spec(data_path=path), settings)


def test_missing_feature_column_lists_available_columns(settings):
    with pytest.raises(DataValidationError) as caught:
        prepare(table_spec(features=["bill_length_mm", "wingspan_cm"]), settings)
    message = str(caught.value)
    assert "feature column 'wingspan_cm' not found" in message
    for column in ("island", "body_mass_g", "sex", "date_egg", "species"):
        assert column in message


def test_target_with_a_single_class(settings, penguins_raw, write_csv):
    adelie = penguins_raw[penguins_raw["Species"].str.startswith("Adelie")]
    with pytest.raises(DataValidationError, match="single class"):
        prepare(table_spec(data_path=write_csv(adelie)), settings)


def test_non_numeric_value_in_a_numeric_column(settings, penguins_raw, write_csv):
    penguins_raw.loc[3, "Body Mass (g)"] = "heavy"
    with pytest.raises(DataValidationError) as caught:
        prepare(table_spec(data_path=write_csv(penguins_raw)), settings)
    assert "body_mass_g" in str(caught.value)
    assert "'heavy'" in str(caught.value)


def test_split_column_with_a_single_season(settings, penguins_raw, write_csv):
    season_2007 = penguins_raw[penguins_raw["Date Egg"].str.startswith("2007")]
    with pytest.raises(DataValidationError, match="single season"):
        prepare(table_spec(data_path=write_csv(season_2007)), settings)


def test_explicit_split_column_that_does_not_exist(settings, iris_csv, iris_features):
    with pytest.raises(DataValidationError, match="split column 'season' not found"):
        prepare(
            table_spec(
                data_path=iris_csv, target="Kind", features=iris_features, split_column="season"
            ),
            settings,
        )


def test_feature_column_without_any_value(settings, iris_csv, iris_features, write_csv):
    table = pd.read_csv(iris_csv)
    table["Petal Width"] = np.nan
    path = write_csv(table, "no_width.csv")
    with pytest.raises(DataValidationError, match="petal_width"):
        prepare(
            table_spec(data_path=path, target="Kind", features=iris_features, split_column=None),
            settings,
        )


# --- other tables ------------------------------------------------------------------------------


def test_users_own_csv_with_a_seeded_random_split(settings, iris_csv, iris_features):
    prepared = prepare(
        table_spec(data_path=iris_csv, target="Kind", features=iris_features, split_column=None),
        settings,
    )
    assert prepared.spec.target == "kind"
    assert prepared.spec.numeric == ["sepal_length", "petal_width"]
    assert prepared.spec.categorical == ["garden"]
    assert prepared.card.split["by"] == "random"
    assert (len(prepared.train), len(prepared.eval)) == (67, 23)
    assert set(prepared.eval["kind"]) == {"setosa", "versicolor", "virginica"}  # stratified
    again = prepare(
        table_spec(data_path=iris_csv, target="Kind", features=iris_features, split_column=None),
        settings,
    )
    pd.testing.assert_frame_equal(again.eval, prepared.eval)
    other_seed = prepare(
        table_spec(data_path=iris_csv, target="Kind", features=iris_features, split_column=None),
        get_settings(seed=7),
    )
    assert not other_seed.eval.equals(prepared.eval)
    # a different split is a different data version: its files do not overwrite the first one's
    assert other_seed.card.data_version != prepared.card.data_version
    assert again.card.data_version == prepared.card.data_version


def test_default_season_column_is_optional_for_other_tables(settings, iris_csv, iris_features):
    prepared = prepare(
        table_spec(data_path=iris_csv, target="Kind", features=iris_features), settings
    )
    assert prepared.card.split["by"] == "random"


def test_numbered_seasons_hold_out_the_highest_number(settings, iris_csv, iris_features, write_csv):
    table = pd.read_csv(iris_csv)
    table["Season"] = np.tile([1, 2, 10], len(table) // 3)
    path = write_csv(table, "seasons.csv")
    prepared = prepare(
        table_spec(data_path=path, target="Kind", features=iris_features, split_column="Season"),
        settings,
    )
    assert prepared.card.split["eval_seasons"] == ["10"]
    assert prepared.card.split["train_seasons"] == ["1", "2"]
    assert set(prepared.eval["season"]) == {"10"}


def test_penguins_with_another_target(settings):
    prepared = prepare(table_spec(target="island", features=["bill_length_mm", "sex"]), settings)
    assert set(prepared.clean["island"]) == {"Biscoe", "Dream", "Torgersen"}
    assert set(prepared.clean["sex"].dropna()) == {"male", "female"}


def test_penguins_with_another_target_and_the_default_features(settings):
    prepared = prepare(table_spec(target="island"), settings)
    assert "island" not in prepared.spec.features
    assert prepared.spec.categorical == ["sex"]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("ácido málico", "acido_malico"),
        ("Região", "regiao"),
        ("Ração (kg)", "racao_kg"),
        ("od280/od315_of_diluted_wines", "od280_od315_of_diluted_wines"),
        ("Culmen Length (mm)", "culmen_length_mm"),
        ("Delta 15 N (o/oo)", "delta_15_n_o_oo"),
    ],
)
def test_column_names_are_transliterated_to_ascii_snake_case(header, name):
    assert normalize_column(header) == name


def test_accented_headers_are_found_by_either_spelling(settings, iris_csv, write_csv):
    table = pd.read_csv(iris_csv).rename(columns={"Kind": "Espécie", "Garden": "Região"})
    path = write_csv(table, "acentos.csv")
    prepared = prepare(table_spec(data_path=path, target="Espécie"), settings, write=False)
    assert prepared.spec.target == "especie"
    assert prepared.spec.categorical == ["regiao"]
    assert (
        prepare(table_spec(data_path=path, target="especie"), settings, write=False).spec
        == prepared.spec
    )


def test_shipped_raw_file_matches_its_provenance_note(settings):
    note = (PROJ_ROOT / "data" / "raw" / "README.md").read_text()
    assert file_sha256(PENGUINS_CSV) in note
