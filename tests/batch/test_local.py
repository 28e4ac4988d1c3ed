"""`mlops-kit score` with the local engine: the API's answers for every row, in any file a user has."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_kit.batch import outputs, reader, run, validate
from mlops_kit.config import Settings
from tests.batch.conftest import wine_table
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # a trained store and MLflow runs

BAD_ROWS = {  # row -> (column, value as the file has it)
    1: ("bill_length_mm", "abc"),
    4: ("island", "Atlantis"),
    6: ("body_mass_g", ""),
    7: ("flipper_length_mm", "1e999"),
}


def _record(row: pd.Series, names: list[str]) -> dict[str, object]:
    """A row as a user's JSON record: numbers as numbers, empty cells left out."""
    record = {}
    for name in names:
        value = row[name]
        if pd.isna(value) or value == "":
            continue
        try:
            record[name] = float(value)
        except (TypeError, ValueError):
            record[name] = value
    return record


def _api_answers(client, table: pd.DataFrame) -> list[dict[str, object]]:
    model = client.get("/model").json()
    names = [model["file_headers"].get(name, name) for name in model["inputs"]]  # the file's
    records = [_record(row, names) for _, row in table.iterrows()]
    response = client.post("/predict", content=json.dumps(records))
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def _assert_same_answers(scored: pd.DataFrame, answers: list[dict[str, object]]) -> None:
    classes = list(answers[0]["probabilities"])
    assert scored["predicted"].tolist() == [a["predicted"] for a in answers]
    expected = np.array([[a["probabilities"][c] for c in classes] for a in answers])
    got = scored[[f"proba_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scored["confidence"], [a["confidence"] for a in answers], atol=1e-12)
    assert scored["low_confidence"].tolist() == [a["low_confidence"] for a in answers]
    assert set(scored["model_version"]) == {answers[0]["model_version"]}


def test_the_held_out_season_scores_as_the_api_answers(
    penguins: Settings, held_out: pd.DataFrame, api, tmp_path: Path
) -> None:
    table = held_out.astype(object).where(held_out.notna(), "").astype(str)
    table.insert(0, "sample_id", [f"N{i}A1" for i in range(len(table))])  # the user's own key
    for row, (column, value) in BAD_ROWS.items():
        table.loc[row, column] = value
    table.to_csv(tmp_path / "season.csv", index=False)
    result = run.score_table(penguins, tmp_path / "season.csv", tmp_path / "out" / "scored.parquet")

    scored = pd.read_parquet(result.out)
    good = table.drop(index=list(BAD_ROWS)).reset_index(drop=True)
    assert (result.rows_in, result.scored, result.rejected) == (len(table), len(good), 4)
    assert list(scored.columns[: len(table.columns)]) == list(table.columns)  # every input column
    assert scored["sample_id"].tolist() == good["sample_id"].tolist()
    assert scored["bill_length_mm"].dtype == np.float64  # numbers as they were scored
    _assert_same_answers(scored, _api_answers(api(penguins), good))
    assert set(scored["batch_id"]) == {result.batch_id}

    rejects = pd.read_parquet(result.rejects)
    assert rejects.index.size == 4 and rejects["sample_id"].tolist() == [
        table.loc[r, "sample_id"] for r in BAD_ROWS
    ]
    for reason, (column, value) in zip(rejects["reason"], BAD_ROWS.values(), strict=True):
        assert f"'{column}'" in reason and value in reason

    run_data = mlflow.get_run(result.run_id)
    assert run_data.data.metrics["rows_rejected"] == 4
    assert run_data.data.metrics["rows_scored"] == len(good)
    assert run_data.data.params["output"] == str(result.out)
    assert run_data.inputs.dataset_inputs[0].dataset.name == "season.csv"
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "batch")]
    assert "batch/confidence_histogram.png" in artifacts


def test_a_table_the_kit_did_not_ship_keeps_its_ids(wine: Settings, api, tmp_path: Path) -> None:
    table = wine_table().sample(60, random_state=1).reset_index(drop=True)
    table.to_csv(tmp_path / "wine.csv", index=False)
    table.to_parquet(tmp_path / "wine.parquet")
    client = api(wine)
    answers = _api_answers(client, table)
    for name in ("wine.csv", "wine.parquet"):
        result = run.score_table(wine, tmp_path / name, tmp_path / f"{name}.scored.parquet")
        scored = pd.read_parquet(result.out)
        assert scored["id"].tolist() == table["id"].tolist() and result.rejected == 0
        assert "cultivar" in scored.columns  # a column the model does not use is kept too
        _assert_same_answers(scored, answers)


def test_a_folder_of_parts_a_brazilian_csv_and_parquet_give_the_same_answers(
    wine: Settings, tmp_path: Path
) -> None:
    table = wine_table().head(90)
    one = run.score_table(wine, _write(table, tmp_path / "one.csv"), tmp_path / "one.parquet")
    expected = pd.read_parquet(one.out).drop(columns="batch_id")

    parts = tmp_path / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, 90, 30)):
        _write(table.iloc[start : start + 30], parts / f"part-{i:05d}.csv")
    (parts / "_SUCCESS").write_text("")  # as Spark and Hadoop leave them
    brazilian = tmp_path / "vinhos.csv"
    text = table.to_csv(index=False, sep=";", decimal=",")
    brazilian.write_bytes(text.replace("id;", "Identificação;", 1).encode("cp1252"))
    parquet = _write(table, tmp_path / "wine.parquet")

    for source in (parts, brazilian, parquet):
        result = run.score_table(wine, source, tmp_path / f"{source.stem}-scored.parquet")
        scored = pd.read_parquet(result.out).drop(columns="batch_id")
        scored = scored.rename(columns={"Identificação": "id"})
        assert result.rejected == 0, pd.read_parquet(result.rejects)["reason"].head().tolist()
        pd.testing.assert_frame_equal(
            scored[expected.columns[14:]], expected[expected.columns[14:]], check_dtype=False
        )
        assert scored["id"].tolist() == expected["id"].tolist()


def _write(table: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path, index=False)
    return path


def test_an_existing_output_is_refused_unless_overwrite(wine: Settings, tmp_path: Path) -> None:
    source = _write(wine_table().head(20), tmp_path / "wine.csv")
    out = tmp_path / "scored.parquet"
    out.write_text("yesterday's")
    with pytest.raises(outputs.OutputError, match="already exists; pass --overwrite"):
        run.score_table(wine, source, out)
    assert out.read_text() == "yesterday's"
    result = run.score_table(wine, source, out, overwrite=True)
    assert len(pd.read_parquet(out)) == 20 and result.rejects.exists()


def test_a_batch_that_fails_half_way_leaves_nothing_behind(wine: Settings, tmp_path: Path) -> None:
    nightly = tmp_path / "nightly"
    nightly.mkdir()
    _write(wine_table(), nightly / "part-0.csv")  # scored and written before part-1 fails
    text = pd.concat([wine_table()] * 150, ignore_index=True).to_csv(index=False).encode()
    cut = len(text) - 2000  # ~2.1 MB: past the head the reading options come from
    (nightly / "part-1.csv").write_bytes(text[:cut] + "ç".encode("cp1252") + text[cut:])
    out = tmp_path / "out" / "scored.parquet"
    with pytest.raises(reader.InputError, match="part-1.csv cannot be read as CSV"):
        run.score_table(wine, nightly, out, chunk_rows=50)
    assert sorted(p.name for p in out.parent.iterdir()) == []
    failed = mlflow.search_runs(experiment_names=[wine.experiment_name])
    assert failed["status"].tolist() == ["FAILED"]


def test_the_cli_scores_and_refuses_with_the_fix(wine: Settings, tmp_path: Path) -> None:
    source = _write(wine_table().head(30), tmp_path / "wine.csv")
    out = tmp_path / "scored.parquet"
    done = run_cli("score", "--data", str(source), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "rows in 30  scored 30  rejected 0" in done.stdout and out.exists()
    again = run_cli("score", "--data", str(source), "--out", str(out))
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    missing = run_cli("score", "--data", str(tmp_path / "nope.csv"), "--out", str(out))
    assert missing.returncode == 2 and "input not found" in missing.stderr
    no_column = _write(wine_table().drop(columns="alcohol").head(5), tmp_path / "cut.csv")
    refused = run_cli("score", "--data", str(no_column), "--out", str(tmp_path / "c.parquet"))
    assert refused.returncode == 2 and "has no column 'alcohol'" in refused.stderr
    other = run_cli("score", "--data", str(source), "--out", str(tmp_path / "x.parquet"))
    assert other.returncode == 0
    nobody = run_cli(
        "score", "--data", str(source), "--out", str(tmp_path / "y.parquet"), "--alias", "nobody"
    )
    assert nobody.returncode == 2 and "has the alias 'nobody'" in nobody.stderr
    assert not (tmp_path / "c.parquet").exists() and not (tmp_path / "y.parquet").exists()


def test_reasons_in_the_rejects_file_name_the_file_columns(
    wine: Settings, api, tmp_path: Path
) -> None:
    table = wine_table().head(6).astype(object)
    table.loc[2, "alcohol"] = "treze"
    numbers = [c for c in table.columns if c not in ("id", "cultivar")]
    table.loc[4, numbers] = 1.79e308  # valid numbers whose probabilities are not finite
    text = table.to_csv(index=False) + "w999,13.2,oops\n"  # a line cut short
    source = tmp_path / "w.csv"
    source.write_text(text)
    result = run.score_table(wine, source, tmp_path / "s.parquet")
    rejects = pd.read_parquet(result.rejects)
    assert rejects["id"].tolist()[:2] == ["w002", "w004"] and rejects["id"].isna().tolist()[2]
    assert rejects["reason"].tolist() == [
        "'alcohol' must be a number, got the text 'treze'",
        validate.NOT_SCORABLE,
        "the line has 3 fields where the header has 15: 'w999,13.2,oops'",
    ]
    assert (result.rows_in, result.scored, result.rejected) == (7, 4, 3)
    refused = api(wine).post("/predict", json=_record(table.loc[4], numbers))
    assert refused.status_code == 422 and "cannot score these values" in refused.text


def test_a_parquet_of_text_comes_back_with_numbers(wine: Settings, tmp_path: Path) -> None:
    table = wine_table().head(12).astype(str)  # every column text, as some exports write it
    table.loc[3, "proline"] = "n/d"
    result = run.score_table(wine, _write(table, tmp_path / "w.parquet"), tmp_path / "s.parquet")
    scored, rejects = pd.read_parquet(result.out), pd.read_parquet(result.rejects)
    assert scored["proline"].dtype == np.float64 and scored["id"].dtype != np.float64
    assert rejects["proline"].tolist() == ["n/d"]  # a rejected row as it was read
    assert rejects["reason"].tolist() == ["'proline' must be a number, got the text 'n/d'"]


def test_a_model_uri_scores_with_that_version(wine: Settings, tmp_path: Path) -> None:
    source = _write(wine_table().head(10), tmp_path / "w.csv")
    result = run.score_table(wine, source, tmp_path / "s.parquet", model_uri="models:/wine/1")
    assert (result.model_name, result.model_version) == ("wine", "1")
    assert set(pd.read_parquet(result.out)["model_version"]) == {"1"}
    with pytest.raises(run.NoModel, match="give --model-uri a model package folder"):
        run.score_table(wine, source, tmp_path / "t.parquet", model_uri=str(tmp_path / "nope"))
