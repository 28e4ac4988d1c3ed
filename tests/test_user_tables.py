"""The data stage on tables people bring: other datasets, Brazilian files, odd columns, tiny tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from mlops_kit import data
from mlops_kit.config import PENGUIN_FEATURES
from mlops_kit.data import DataValidationError, prepare
from mlops_kit.tables import normalize_column
from mlops_kit.training_pipeline import card_table, run_training_pipeline
from tests.helpers import iris_like, run_cli, table_spec


def bundled(name: str) -> tuple[pd.DataFrame, str]:
    """A scikit-learn bundled dataset as a user's table: named classes in a 'label' column."""
    loaded = getattr(datasets, f"load_{name}")(as_frame=True)
    table = loaded.frame.drop(columns=["target"])
    table["label"] = np.asarray(loaded.target_names)[loaded.target]
    return table, "label"


def wine_with_extras() -> pd.DataFrame:
    """The wine table as people keep it: an id, a free-text note, accents in the headers."""
    table, _ = bundled("wine")
    table = table.rename(columns={"malic_acid": "ácido málico", "label": "cultivar"})
    table.insert(0, "id", range(1, len(table) + 1))
    table["comentário"] = [f"provado em {i % 28 + 1}/03, nota {i}" for i in range(len(table))]
    return table


def prepared_from(settings, write_csv, table: pd.DataFrame, target: str, **kwargs):
    spec = table_spec(data_path=write_csv(table), target=target, **kwargs)
    return prepare(spec, settings, write=False)


# --- defaults that fit the table ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["wine", "breast_cancer", "iris"])
def test_a_bundled_dataset_needs_only_the_target(settings, write_csv, name):
    table, target = bundled(name)
    prepared = prepared_from(settings, write_csv, table, target)
    expected = [normalize_column(c) for c in table.columns if c != target]
    assert prepared.spec.numeric == expected
    assert prepared.spec.categorical == []
    assert prepared.card.excluded_columns == {}
    assert prepared.card.split["by"] == "random"
    assert set(prepared.eval[target]) == set(table[target])


def test_identifier_and_free_text_are_left_out_and_said_so(settings, write_csv):
    prepared = prepare(
        table_spec(data_path=write_csv(wine_with_extras()), target="cultivar"), settings
    )
    excluded = prepared.card.excluded_columns
    assert set(excluded) == {"id", "comentario"}
    assert "identifier" in excluded["id"]
    assert "id" not in prepared.spec.features and "comentario" not in prepared.spec.features
    assert "acido_malico" in prepared.spec.numeric
    card = json.loads((settings.data_dir / prepared.card.data_version / "card.json").read_text())
    assert card["excluded_columns"] == excluded
    shown = dict(card_table(prepared.card).to_numpy().tolist())  # what notebook 02 shows
    assert "id: identifier" in shown["left out"] and "comentario" in shown["left out"]
    # a row from the file carries them: the API accepts them by the file's headers, keys by id
    others = {"id": "id", "comentario": "comentário", "cultivar": "cultivar"}
    assert prepared.card.other_columns == card["other_columns"] == others
    assert prepared.card.record_key == card["record_key"] == "id" and shown["record key"] == "id"


def test_an_identifier_is_the_record_key_when_the_features_are_given(settings, write_csv):
    table = wine_with_extras()
    given = ["alcohol", "ácido málico", "proline"]
    prepared = prepared_from(settings, write_csv, table, "cultivar", features=given)
    assert prepared.card.excluded_columns == {} and prepared.card.record_key == "id"
    assert {"id", "comentario", "cultivar", "ash"} <= set(prepared.card.other_columns)
    assert not set(prepared.card.other_columns) & set(prepared.spec.features)


def test_the_penguin_card_table_has_no_left_out_row(settings):
    prepared = prepare(settings.table, settings, write=False)
    assert "left out" not in set(card_table(prepared.card)["item"])


def test_free_text_with_repeats_is_still_left_out(settings, write_csv):
    table = iris_like(rows_per_class=40)
    rng = np.random.default_rng(1)
    table["Note"] = [f"note {n}" for n in rng.integers(0, 80, len(table))]  # repeats, 80 values
    table["Row"] = range(len(table))  # a row number: numeric, but an identifier
    prepared = prepared_from(settings, write_csv, table, "Kind")
    assert prepared.card.excluded_columns["note"].startswith("free text")
    assert prepared.card.excluded_columns["row"].startswith("identifier")
    assert prepared.spec.features == ["sepal_length", "petal_width", "garden"]


def test_constant_empty_and_date_columns_are_left_out(settings, write_csv):
    table = iris_like(rows_per_class=20)
    table["Country"] = "BR"
    table["Unused"] = np.nan
    table["Measured On"] = pd.date_range("2024-01-01", periods=len(table), freq="D").astype(str)
    prepared = prepared_from(settings, write_csv, table, "Kind")
    excluded = prepared.card.excluded_columns
    assert set(excluded) == {"country", "unused", "measured_on"}
    assert excluded["measured_on"].startswith("dates")


def test_a_date_split_column_on_a_users_table(settings, write_csv):
    table = iris_like(rows_per_class=30)
    table["Measured On"] = np.tile(["2022-05-01", "2023-05-01", "2024-05-01"], len(table) // 3)
    prepared = prepared_from(settings, write_csv, table, "Kind", split_column="Measured On")
    assert prepared.card.split["eval_seasons"] == ["2024"]
    assert "measured_on" not in prepared.spec.features
    assert prepared.card.excluded_columns == {}
    assert prepared.card.other_columns == {"measured_on": "Measured On", "kind": "Kind"}
    assert prepared.card.record_key is None  # no identifier left out: no key


def test_numeric_only_categorical_only_and_missing_values(settings, write_csv):
    rng = np.random.default_rng(3)
    rows = 120
    label = rng.choice(["yes", "no"], rows)
    numeric = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows), "y": label})
    prepared = prepared_from(settings, write_csv, numeric, "y")
    assert (prepared.spec.numeric, prepared.spec.categorical) == (["a", "b"], [])

    categorical = pd.DataFrame(
        {"colour": rng.choice(["red", "blue"], rows), "size": rng.choice(["S", "M", "L"], rows)}
    )
    categorical["y"] = label
    prepared = prepared_from(settings, write_csv, categorical, "y")
    assert (prepared.spec.numeric, prepared.spec.categorical) == ([], ["colour", "size"])
    assert prepared.card.rows_clean == rows  # repeated rows of categories are data, not copies

    mixed = numeric.assign(colour=categorical["colour"])
    mixed.loc[::5, "a"] = np.nan
    mixed.loc[::7, "colour"] = np.nan
    prepared = prepared_from(settings, write_csv, mixed, "y")
    assert prepared.spec.features == ["a", "b", "colour"]
    assert prepared.clean["a"].isna().sum() == rows // 5
    assert prepared.card.rows_clean == rows


def test_a_copied_row_of_precise_measurements_is_dropped(settings, write_csv):
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"a": rng.normal(size=60), "y": ["p", "q"] * 30})
    copied = pd.concat([table, table.iloc[[3, 40]]], ignore_index=True)
    prepared = prepared_from(settings, write_csv, copied, "y")
    assert prepared.card.rows_dropped == {"duplicate": 2}
    assert prepared.card.rows_clean == 60


def test_numbered_target_of_zeros_and_ones(settings, write_csv):
    table, _ = bundled("breast_cancer")
    table["label"] = (table["label"] == "malignant").astype(int)
    prepared = prepared_from(settings, write_csv, table, "label")
    assert set(prepared.clean["label"]) == {"0", "1"}
    assert "label" not in prepared.spec.features


def test_explicit_features_are_kept_even_an_identifier(settings, write_csv):
    prepared = prepared_from(
        settings, write_csv, wine_with_extras(), "cultivar", features=["id", "alcohol"]
    )
    assert prepared.spec.features == ["id", "alcohol"]
    assert prepared.card.excluded_columns == {}


def test_features_that_are_given_are_used_as_given(settings, write_csv):
    """Only features not given are derived: the penguin list named on another table is refused."""
    table, target = bundled("iris")
    assert len(prepared_from(settings, write_csv, table, target).spec.numeric) == 4
    with pytest.raises(DataValidationError, match="feature column 'island' not found"):
        prepared_from(settings, write_csv, table, target, features=list(PENGUIN_FEATURES))


def test_no_usable_column_is_refused_with_the_reasons(settings, write_csv):
    table = pd.DataFrame({"id": [f"r{i}" for i in range(60)], "y": ["a", "b"] * 30})
    with pytest.raises(DataValidationError) as caught:
        prepared_from(settings, write_csv, table, "y")
    assert "no column of the table can be a feature" in str(caught.value)
    assert "id: identifier" in str(caught.value)
    assert "--features" in str(caught.value)


def test_a_missing_target_says_how_to_name_it(settings, write_csv):
    table, _ = bundled("wine")
    with pytest.raises(DataValidationError, match="not found.*--target"):
        prepare(table_spec(data_path=write_csv(table)), settings, write=False)


# --- Brazilian files --------------------------------------------------------------------------


def test_excel_pt_br_export_reads_as_the_same_numbers(settings, write_csv, tmp_path):
    table = wine_with_extras()
    plain = prepared_from(settings, write_csv, table, "cultivar")
    path = tmp_path / "vinhos.csv"  # Excel pt-BR: ';' between columns, decimal comma, cp1252
    table.to_csv(path, index=False, sep=";", decimal=",", encoding="cp1252")
    assert "ácido málico".encode("cp1252") in path.read_bytes()
    assert b"14,23" in path.read_bytes()
    excel = prepare(table_spec(data_path=path, target="cultivar"), settings, write=False)
    pd.testing.assert_frame_equal(excel.clean, plain.clean)
    assert excel.spec == plain.spec
    assert excel.card.read_as["separator"] == ";"
    assert excel.card.read_as["encoding"] == "cp1252"
    assert "alcohol" in excel.card.read_as["decimal_comma_columns"]


def test_thousands_dots_in_a_decimal_comma_file(settings, write_csv):
    table = iris_like(rows_per_class=20)
    table["Sepal Length"] = table["Sepal Length"].map(lambda v: f"{v:.2f}".replace(".", ","))
    table["Mass"] = [f"{1000 + (i % 20) * 13}" for i in range(len(table))]
    table["Mass"] = table["Mass"].str.replace(r"^(\d)(\d{3})$", r"\1.\2", regex=True)  # '1.012'
    path = write_csv(table.to_csv(index=False, sep=";"), "milhar.csv")
    prepared = prepare(table_spec(data_path=path, target="Kind"), settings, write=False)
    assert prepared.clean["mass"].min() == 1000
    assert prepared.clean["sepal_length"].between(3, 9).all()


def test_quoted_decimal_commas_in_a_comma_separated_file_are_numbers(settings, write_csv):
    table, target = bundled("wine")
    text = table.astype(str).apply(lambda col: col.str.replace(".", ",", regex=False))
    path = write_csv(text.to_csv(index=False), "aspas.csv")
    assert '"14,23"' in path.read_text()
    prepared = prepare(table_spec(data_path=path, target=target), settings, write=False)
    assert prepared.spec.categorical == []
    assert prepared.clean["alcohol"].iloc[0] == pytest.approx(14.23)


def test_a_comma_that_could_be_thousands_is_refused(settings, write_csv):
    table = iris_like(rows_per_class=20)
    table["Price"] = [f"{1 + i % 9},{i % 10}00" for i in range(len(table))]  # '1,000', '2,100'
    path = write_csv(table[["Price", "Kind"]], "price.csv")
    with pytest.raises(DataValidationError) as caught:
        prepare(table_spec(data_path=path, target="Kind"), settings, write=False)
    assert "'price'" in str(caught.value)
    assert "decimal point" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "shown"),
    [(["12%", "15%", "7%"], "'12%'"), (["14,2", "14.5", "13,9"], "'14,2'")],
)
def test_numbers_in_another_notation_never_become_categories(settings, write_csv, values, shown):
    table = iris_like(rows_per_class=20)
    table["Share"] = np.resize(values, len(table))
    with pytest.raises(DataValidationError) as caught:
        prepared_from(settings, write_csv, table, "Kind")
    message = str(caught.value)
    assert "'share'" in message and shown in message
    assert "plain number" in message


def test_a_file_in_neither_utf8_nor_windows_1252_says_to_save_as_utf8(settings, write_csv):
    path = write_csv("x,y\n1,a\n", "strange.csv")
    path.write_bytes(b"x,y\n1,a\n" + b"\x81\x8d,b\n")  # undefined in Windows-1252
    with pytest.raises(DataValidationError, match="save it as 'CSV UTF-8'"):
        prepare(table_spec(data_path=path, target="y"), settings, write=False)


def test_an_unknown_separator_is_explained(settings, write_csv):
    path = write_csv(iris_like().to_csv(index=False, sep="|"), "pipes.csv")
    with pytest.raises(DataValidationError, match="read as a single column"):
        prepare(table_spec(data_path=path, target="Kind"), settings, write=False)


# --- data-size rules --------------------------------------------------------------------------


def test_a_three_row_table_is_refused_naming_the_counts(settings, write_csv):
    table = pd.DataFrame({"x": [1.5, 0.2, 3.1], "y": ["a", "b", "a"]})
    with pytest.raises(DataValidationError) as caught:
        prepared_from(settings, write_csv, table, "y")
    message = str(caught.value)
    assert "'a' (2)" in message and "'b' (1)" in message
    assert f"at least {data.MIN_TRAIN_ROWS_PER_CLASS + 2} rows" in message
    assert "Add rows" in message


def test_forty_classes_of_two_rows_get_a_message_not_a_traceback(settings, write_csv):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=80), "y": [f"c{i:02d}" for i in range(40)] * 2})
    with pytest.raises(DataValidationError) as caught:
        prepared_from(settings, write_csv, table, "y")
    message = str(caught.value)
    assert "too few rows for 40 of 40 classes" in message
    assert "and 35 more" in message


def test_too_few_evaluation_rows_are_refused(settings, write_csv):
    table = iris_like(rows_per_class=10)  # 30 rows: 8 held out at random
    with pytest.raises(DataValidationError, match=f"8 rows; need at least {data.MIN_EVAL_ROWS}"):
        prepared_from(settings, write_csv, table, "Kind")
    assert len(prepared_from(settings, write_csv, iris_like(rows_per_class=14), "Kind").eval) >= 10


def test_a_newest_season_without_a_class_is_refused(settings, write_csv):
    table = iris_like(rows_per_class=30)
    table["Season"] = np.where(table.index % 2 == 0, "2023", "2024")
    table.loc[table["Kind"] == "virginica", "Season"] = "2023"
    with pytest.raises(DataValidationError) as caught:
        prepared_from(settings, write_csv, table, "Kind", split_column="Season")
    message = str(caught.value)
    assert "the evaluation set (2024)" in message and "'virginica' (0)" in message
    assert "--split-column none" in message


def test_a_refused_table_registers_and_promotes_nothing(settings, write_csv):
    path = write_csv(iris_like(rows_per_class=3), "tiny.csv")
    with pytest.raises(DataValidationError, match="too few rows"):
        run_training_pipeline(
            settings, table_spec(data_path=path, target="Kind"), candidates=["logistic_regression"]
        )
    assert not settings.mlflow_db.exists()
    assert not settings.data_dir.exists()


# --- end to end -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_users_table_trains_with_only_its_path_and_target(settings, write_csv):
    path = write_csv(wine_with_extras(), "vinhos.csv")
    result = run_training_pipeline(
        settings, table_spec(data_path=path, target="cultivar"), candidates=["logistic_regression"]
    )
    assert result.decision.promoted
    assert "id" not in result.prepared.spec.features
    assert result.best.pipeline.predict(result.prepared.X_eval.head(3)).shape == (3,)


@pytest.mark.slow
def test_cli_train_on_a_users_table_says_what_it_left_out(settings, tmp_path):
    path = tmp_path / "vinhos.csv"
    wine_with_extras().to_csv(path, index=False, sep=";", decimal=",", encoding="cp1252")
    done = run_cli(
        "train",
        "--data",
        str(path),
        "--target",
        "cultivar",
        "--candidates",
        "logistic_regression",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "left out       id: identifier: a different value on every row" in done.stdout
    assert "left out       comentario: " in done.stdout
    assert "record key     id (the API sends it back with each answer)" in done.stdout
    assert "read as        columns separated by ';', decimal comma in" in done.stdout


def test_cli_train_on_a_tiny_table_exits_2_with_the_fix(settings, tmp_path):
    path = tmp_path / "tiny.csv"
    iris_like(rows_per_class=3).to_csv(path, index=False)
    done = run_cli("train", "--data", str(path), "--target", "Kind", cwd=tmp_path)
    assert done.returncode == 2
    assert "error: too few rows for 3 of 3 classes of 'kind'" in done.stderr
    assert "Add rows" in done.stderr
    assert "Traceback" not in done.stderr
    assert not settings.mlflow_db.exists()


def test_an_explicit_split_column_that_is_missing_is_refused(settings, write_csv, monkeypatch):
    table, target = bundled("wine")
    path = write_csv(table)
    with pytest.raises(DataValidationError, match="split column 'season' not found"):
        prepare(
            table_spec(data_path=path, target=target, split_column="season"), settings, write=False
        )
    monkeypatch.setenv("MLOPS_KIT_SPLIT_COLUMN", "season")  # the same, said as a setting
    from mlops_kit.config import get_settings

    with pytest.raises(DataValidationError, match="split column 'season' not found"):
        prepare(table_spec(data_path=path, target=target), get_settings(), write=False)


def test_none_and_a_comma_list_mean_the_same_to_prepare_as_to_the_cli(settings, write_csv):
    table, target = bundled("wine")
    prepared = prepare(
        table_spec(
            data_path=write_csv(table),
            target=target,
            features="alcohol, proline",
            split_column="none",
        ),
        settings,
        write=False,
    )
    assert prepared.spec.features == ["alcohol", "proline"]
    assert prepared.card.split["by"] == "random"
