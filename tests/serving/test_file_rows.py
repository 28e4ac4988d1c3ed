"""A row sent exactly as it is in the user's file is answered, with its key, and logged with it.

The cars table is one the kit did not ship (like vega's cars): a text `Name` that tells the cars
apart, a `Year` date, free-text `Notes`, and the `Origin` to predict. The kit leaves `Name`,
`Year` and `Notes` out of the model; a row from the file still carries them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from mlops_kit.config import PENGUIN_FEATURES, Settings
from mlops_kit.scoring.errors import BadRequest
from mlops_kit.scoring.loader import build_champion
from mlops_kit.serving.app import create_app
from mlops_kit.store.predictions.window import read_predictions
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import PENGUINS_CSV, clear_env, reset_mlflow, table_spec

pytestmark = pytest.mark.slow  # trains a model

MODEL = "cars"
ORIGINS = ["USA", "Europe", "Japan"]


def cars_table(rows: int = 150, seed: int = 0) -> pd.DataFrame:
    """Cars as a user's file has them: the origin follows from weight and horsepower."""
    rng = np.random.default_rng(seed)
    origin = rng.choice(ORIGINS, rows)
    heavy = np.select([origin == "USA", origin == "Europe"], [3800.0, 2700.0], 2300.0)
    weight = np.round(heavy + rng.normal(0, 250, rows))
    horsepower = np.round(weight / 25 + rng.normal(0, 8, rows))
    cylinders = np.where(weight > 3200, "8", np.where(weight > 2500, "6", "4"))
    brands = {"USA": "chevrolet", "Europe": "volkswagen", "Japan": "toyota"}
    return pd.DataFrame(
        {
            "Name": [f"{brands[o]} model {i}" for i, o in enumerate(origin)],
            "Weight_in_lbs": weight,
            "Horsepower": horsepower,
            "Cylinders": cylinders,
            "Year": [f"19{70 + i % 12}-01-01" for i in range(rows)],
            "Notes": [f"bought in lot {i * 7919 % 1000}" for i in range(rows)],
            "Origin": origin,
        }
    )


@pytest.fixture(scope="module")
def cars(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A workspace whose registry serves a model trained by the kit on the cars file."""
    root = tmp_path_factory.mktemp("cars")
    table = cars_table()
    table.to_csv(root / "cars.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        settings = Settings(workspace=root / "workspace", runs_dir=root / "runs", model_name=MODEL)
        try:
            result = run_training_pipeline(
                settings,
                table_spec(data_path=root / "cars.csv", target="Origin"),
                candidates=["logistic_regression"],
                quality_gate=0.0,
            )
        finally:
            reset_mlflow()
    card = result.prepared.card
    assert card.record_key == "name" and set(card.excluded_columns) == {"name", "year", "notes"}
    return root / "workspace", pd.read_csv(root / "cars.csv")  # as a client reads the file


@pytest.fixture
def served(
    cars: tuple[Path, pd.DataFrame], tmp_path: Path
) -> Iterator[tuple[Settings, TestClient]]:
    """The cars model served from a copy of the registry, with an empty prediction log."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    shutil.copy2(cars[0] / "mlflow.db", workspace / "mlflow.db")
    settings = Settings(workspace=workspace, reload_interval=0, model_name=MODEL)
    with TestClient(create_app(settings)) as client:
        yield settings, client


def file_rows(table: pd.DataFrame, n: int) -> list[dict[str, object]]:
    """The first rows of the file, every column, as a client reading the CSV sends them."""
    return table.head(n).to_dict("records")


def test_a_row_as_in_the_file_is_answered_with_its_key(served, cars) -> None:
    settings, client = served
    rows = file_rows(cars[1], 3)
    info = client.get("/model").json()
    assert info["record_key"] == "Name"
    assert set(info["ignored_columns"]) == {"Name", "Year", "Notes", "Origin"}
    assert set(info["inputs"]) == {"weight_in_lbs", "horsepower", "cylinders"}

    one = client.post("/predict", json=rows[0], headers={"X-Request-ID": "one"})
    assert one.status_code == 200, one.text
    [answer] = one.json()["predictions"]
    assert answer["key"] == "toyota model 0" == rows[0]["Name"]
    assert answer["predicted"] in ORIGINS

    batch = client.post("/predict", json=rows, headers={"X-Request-ID": "batch"})
    assert batch.status_code == 200, batch.text
    assert [p["key"] for p in batch.json()["predictions"]] == [r["Name"] for r in rows]
    assert batch.json()["predictions"][0] == answer  # the ignored columns change nothing

    columns = {name: [r[name] for r in rows] for name in rows[0]}
    column_wise = client.post("/predict/columns", json=columns, headers={"X-Request-ID": "cols"})
    assert column_wise.status_code == 200, column_wise.text
    assert column_wise.json()["key"] == [r["Name"] for r in rows]

    assert client.app.state.predlog.flush(10)
    log = read_predictions(settings)
    assert log["request_id"].tolist() == ["one"] + ["batch"] * 3 + ["cols"] * 3
    assert log["record_key"].tolist() == [rows[0]["Name"]] + [r["Name"] for r in rows] * 2
    assert set(log["source"]) == {"api"}
    assert "Name" not in log.columns and "name" not in log.columns  # the input is the model's


def test_without_the_key_the_answer_has_none_and_the_log_none(served, cars) -> None:
    settings, client = served
    row = {k: v for k, v in file_rows(cars[1], 1)[0].items() if k != "Name"}
    answer = client.post("/predict", json=row).json()["predictions"][0]
    assert "key" not in answer and answer["predicted"] in ORIGINS
    assert "key" not in client.post("/predict/columns", json={"Horsepower": [90.0]}).json()
    assert client.app.state.predlog.flush(10)
    assert read_predictions(settings)["record_key"].isna().all()


def test_a_column_the_file_never_had_is_refused(served, cars) -> None:
    _, client = served
    row = {**file_rows(cars[1], 1)[0], "Colour": "red"}
    refused = client.post("/predict", json=row)
    assert refused.status_code == 422
    assert refused.json()["message"] == (
        "field 'Colour' is not an input of the model; its inputs are: "
        "Weight_in_lbs, Horsepower, Cylinders"
    )


def test_invocations_take_the_files_rows_and_answer_as_mlflow_does(served, cars) -> None:
    settings, client = served
    rows = file_rows(cars[1], 2)
    answer = client.post("/invocations", json={"dataframe_records": rows})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == 2 and all("key" not in p for p in predictions)
    assert set(predictions[0]) == {"predicted", "confidence"} | {f"proba_{o}" for o in ORIGINS}
    csv = cars[1].head(2).to_csv(index=False)
    by_csv = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert by_csv.status_code == 200 and by_csv.json()["predictions"] == predictions
    assert client.app.state.predlog.flush(10)  # the answer has MLflow's shape; the log the keys
    assert read_predictions(settings)["record_key"].tolist() == [r["Name"] for r in rows] * 2


def test_docs_name_the_ignored_columns_and_the_key(served) -> None:
    _, client = served
    docs = client.get("/openapi.json").json()
    record = docs["components"]["schemas"]["Record"]
    assert "'Name' is the record's key" in record["description"]
    assert {"Name", "Year", "Notes", "Origin"} <= set(record["properties"])
    assert "the record's key" in record["properties"]["Name"]["description"]


# --- the penguins: the raw file's other columns ride along with the measurements -------------


def penguin_rows(n: int) -> list[dict[str, object]]:
    """Rows of the raw penguins file with every column: the measurements named as the API names
    them (the kit's names, sex in lower case), every other column as the file names it."""
    raw = pd.read_csv(PENGUINS_CSV).head(n)
    raw = raw.astype(object).where(raw.notna(), None)
    kit = {
        "island": "Island",
        "bill_length_mm": "Culmen Length (mm)",
        "bill_depth_mm": "Culmen Depth (mm)",
        "flipper_length_mm": "Flipper Length (mm)",
        "body_mass_g": "Body Mass (g)",
        "sex": "Sex",
    }
    assert list(kit) == PENGUIN_FEATURES
    rows = []
    for row in raw.to_dict("records"):
        record = {k: v for k, v in row.items() if k not in kit.values()}
        record |= {name: row[header] for name, header in kit.items()}
        record["sex"] = record["sex"].lower() if record["sex"] else None
        rows.append(record)
    return rows


def test_penguin_rows_with_every_column_of_the_raw_file_are_answered(client) -> None:
    rows = penguin_rows(3)
    assert {"studyName", "Individual ID", "Date Egg", "Comments", "Species"} <= set(rows[0])
    info = client.get("/model").json()
    assert info["record_key"] is None  # the penguins' identifiers repeat: no key
    assert "Individual ID" in info["ignored_columns"] and "Comments" in info["ignored_columns"]
    answered = client.post("/predict", json=rows)
    assert answered.status_code == 200, answered.text
    plain = [{k: r[k] for k in PENGUIN_FEATURES} for r in rows]
    assert (
        answered.json()["predictions"] == client.post("/predict", json=plain).json()["predictions"]
    )
    normalized = [{"individual_id": "N1A1", "date_egg": "2007-11-11", **p} for p in plain]
    assert client.post("/predict", json=normalized).status_code == 200  # the kit's names too
    refused = client.post("/predict", json={**plain[0], "Colony": "Biscoe"})
    assert refused.status_code == 422 and "'Colony' is not an input" in refused.json()["message"]


def test_a_model_logged_before_the_kit_kept_its_files_columns_refuses_them(
    settings: Settings, tmp_path: Path
) -> None:
    """The registry's penguin model with the new metadata taken out, as an older kit logged it."""
    registry = MlflowClient(settings.tracking_uri, settings.registry_uri)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=registry.get_model_version_download_uri(settings.model_name, "1"),
            dst_path=str(tmp_path / "model"),
            tracking_uri=settings.tracking_uri,
        )
    )
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["metadata"]["other_columns"]["individual_id"] == "Individual ID"
    for key in ("other_columns", "record_key"):
        del mlmodel["metadata"][key]
    (local / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    old = build_champion(
        str(local), name="penguins", version="1", alias="champion", run_id=None, tags={},
        metrics={}, source="old", max_batch=10, accelerate=False,
    )  # fmt: skip
    assert old.inputs.others == () and old.info()["ignored_columns"] == []
    row = penguin_rows(1)[0]
    with pytest.raises(BadRequest, match="field 'studyName' is not an input of the model"):
        old.inputs.validate_records(row)
    assert old.inputs.validate_records({k: row[k] for k in PENGUIN_FEATURES}).rows == 1


def test_a_big_batch_of_long_ignored_text_is_told_to_leave_it_out(cars, tmp_path: Path) -> None:
    """The body limit makes little room for columns the model does not use: the 413 says so."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    shutil.copy2(cars[0] / "mlflow.db", workspace / "mlflow.db")
    settings = Settings(workspace=workspace, reload_interval=0, model_name=MODEL, max_batch=20)
    rows = [{**row, "Notes": "x" * 5000} for row in file_rows(cars[1], 20)]
    with TestClient(create_app(settings)) as client:
        too_big = client.post("/predict", json=rows)
        assert too_big.status_code == 413
        assert "leave them out of a big batch" in too_big.json()["message"]
        short = [{k: v for k, v in row.items() if k != "Notes"} for row in rows]
        assert client.post("/predict", json=short).status_code == 200
