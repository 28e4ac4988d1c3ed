"""Models of other tables are served: numbers only (wine), no numbers (shapes); either scoring path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlops_kit.config import Settings
from mlops_kit.serving.app import create_app
from mlops_kit.store.predictions.window import read_predictions

pytestmark = pytest.mark.slow  # trains two models (the `tables` fixture)

WINE = {"alcohol": 13.2, "malic_acid": 1.8, "flavanoids": 2.8, "color_intensity": 4.4}
WINE["proline"] = 1050.0
WINE["od280_od315_of_diluted_wines"] = 3.0  # the kit's name of the file's 'od280/od315_of_…'
HEADER = "od280/od315_of_diluted_wines"


@pytest.fixture(params=[True, False], ids=["accelerator-on", "accelerator-off"])
def serve(
    request: pytest.FixtureRequest, tables: Path, tmp_path: Path
) -> Iterator[tuple[Settings, dict[str, TestClient]]]:
    """Both models served from a copy of the registry, with the accelerator setting on and off."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    shutil.copy2(tables / "mlflow.db", workspace / "mlflow.db")
    base = Settings(workspace=workspace, reload_interval=0, accelerator=request.param)
    clients = {}
    for name in ("wine", "shapes"):
        clients[name] = TestClient(create_app(base.model_copy(update={"model_name": name})))
        clients[name].__enter__()
    yield base, clients
    for client in clients.values():
        client.__exit__(None, None, None)


def test_a_model_without_text_columns_is_served_and_logged(serve) -> None:
    settings, clients = serve
    wine = clients["wine"]
    info = wine.get("/model").json()
    assert info["required"] == list(WINE) and info["categories"] == {}
    if not settings.accelerator:
        assert info["scoring"] == "model"
    response = wine.post("/predict", json=WINE, headers={"X-Request-ID": "wine-1"})
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["predicted"] == "barolo"
    assert wine.get("/health").json()["scoring"] == info["scoring"]
    assert wine.app.state.predlog.flush(10)
    logged = read_predictions(settings)
    assert logged["request_id"].tolist() == ["wine-1"]
    assert logged["proline"].tolist() == [1050.0]
    refused = wine.post("/predict", json={**WINE, "colour": "red"})
    assert refused.status_code == 422 and "'colour' is not an input" in refused.json()["message"]


def test_records_may_use_the_headers_of_the_training_file(serve) -> None:
    """The CSV's own header is accepted as well as the kit's name, and /docs shows the header."""
    settings, clients = serve
    wine = clients["wine"]
    info = wine.get("/model").json()
    assert info["file_headers"] == {"od280_od315_of_diluted_wines": HEADER}
    as_in_file = {**WINE}
    as_in_file[HEADER] = as_in_file.pop("od280_od315_of_diluted_wines")
    by_name = wine.post("/predict", json=WINE).json()["predictions"]
    by_header = wine.post("/predict", json=[as_in_file, WINE])
    assert by_header.status_code == 200, by_header.text
    assert by_header.json()["predictions"] == by_name * 2
    columns = {k: [v] for k, v in as_in_file.items()}
    column_wise = wine.post("/predict/columns", json=columns)
    assert column_wise.status_code == 200, column_wise.text
    assert column_wise.json()["predicted"] == [by_name[0]["predicted"]]
    assert wine.app.state.predlog.flush(10)
    logged = read_predictions(settings)  # the log keeps the kit's names
    assert logged["od280_od315_of_diluted_wines"].tolist() == [3.0] * 4
    both = wine.post("/predict", json={**WINE, HEADER: 3.0})
    assert both.status_code == 422
    missing = {k: v for k, v in WINE.items() if k != "od280_od315_of_diluted_wines"}
    message = wine.post("/predict", json=missing).json()["message"]
    assert HEADER in message, message
    docs = wine.get("/openapi.json").json()
    example = docs["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    one = example["examples"]["one record"]["value"]
    assert HEADER in one and "od280_od315_of_diluted_wines" not in one
    assert HEADER in docs["components"]["schemas"]["Record"]["properties"]
    table = docs["paths"]["/predict/columns"]["post"]["requestBody"]["content"]["application/json"]
    assert all(values[0] is not None for values in table["examples"]["columns"]["value"].values())


def test_a_model_without_numbers_is_served_and_refuses_unknown_categories(serve) -> None:
    settings, clients = serve
    shapes = clients["shapes"]
    info = shapes.get("/model").json()
    assert info["required"] == []
    assert info["categories"] == {"colour": ["blue", "green", "red"], "shape": ["round", "square"]}
    answers = shapes.post("/predict", json=[{"colour": "red"}, {"colour": "blue", "shape": "box"}])
    assert answers.status_code == 422
    assert "unknown category 'box'" in answers.json()["message"]
    answers = shapes.post("/predict", json=[{"colour": "red", "shape": None}, {"shape": "round"}])
    assert answers.status_code == 200, answers.text
    assert answers.json()["predictions"][0]["predicted"] == "berry"
    columns = shapes.post("/predict/columns", json={"colour": ["green", "purple"]})
    assert columns.status_code == 422 and "'purple'" in columns.json()["message"]


def test_penguin_categories_are_refused_on_either_path(make_client, record: dict) -> None:
    for accelerator in (True, False):
        client = make_client(accelerator=accelerator)
        if not accelerator:
            assert client.get("/model").json()["scoring"] == "model"
        refused = client.post("/predict", json={**record, "island": "Atlantis"})
        assert refused.status_code == 422
        assert "unknown category 'Atlantis'" in refused.json()["message"]
        assert client.post("/predict", json={**record, "sex": "male"}).status_code == 200
