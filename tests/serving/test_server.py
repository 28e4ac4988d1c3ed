"""The API as users run it: `python -m mlops_kit serve`, a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_kit.config import Settings
from mlops_kit.store.predictions.window import read_predictions

from .conftest import RECORD, Server, api_process

RECORDS = [  # valid for v1 and v2 alike (no 'sex'), different enough to get different answers
    RECORD,
    {
        **RECORD,
        "island": "Biscoe",
        "bill_length_mm": 49.0,
        "flipper_length_mm": 221.0,
        "body_mass_g": 5400.0,
    },
    {**RECORD, "island": "Torgersen", "bill_length_mm": 38.0, "bill_depth_mm": 19.0},
    {**RECORD, "bill_length_mm": 44.0, "bill_depth_mm": 18.4},
]


@pytest.fixture(scope="module")
def live(registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One API process for the read-only tests of this module (batch limit 50)."""
    root = tmp_path_factory.mktemp("live-api")
    (root / "workspace").mkdir()
    shutil.copy2(registry.workspace / "mlflow.db", root / "workspace" / "mlflow.db")
    with api_process(
        root / "api.log", MLOPS_KIT_WORKSPACE=str(root / "workspace"), MLOPS_KIT_MAX_BATCH="50"
    ) as server:
        yield server


def test_predict_one_and_a_batch_over_http(live: Server) -> None:
    with httpx.Client(base_url=live.url) as http:
        one = http.post(
            "/predict", json={**RECORD, "sex": "female"}, headers={"X-Request-ID": "abc-1"}
        )
        assert one.status_code == 200
        assert one.headers["x-request-id"] == "abc-1" and one.json()["request_id"] == "abc-1"
        assert one.json()["predictions"][0]["model_version"] == "1"
        batch = http.post("/predict", json=RECORDS)
        assert batch.status_code == 200
        assert [p["predicted"] for p in batch.json()["predictions"]][:2] == ["Chinstrap", "Gentoo"]


def test_health_model_and_docs_over_http(live: Server) -> None:
    with httpx.Client(base_url=live.url) as http:
        assert http.get("/health").json()["status"] == "ok"
        info = http.get("/model").json()
        assert info["version"] == "1" and info["metrics"]["eval_f1_macro"] > 0.9
        assert info["environment"]["match"] is True
        docs = http.get("/", follow_redirects=True)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        example = http.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
        value = example["content"]["application/json"]["examples"]["one record"]["value"]
        assert http.post("/predict", json=value).status_code == 200


def test_bad_input_over_http(live: Server) -> None:
    with httpx.Client(base_url=live.url) as http:
        headers = {"Content-Type": "application/json"}
        malformed = http.post("/predict", content=b'{"island": ', headers=headers)
        assert malformed.status_code == 400
        too_many = http.post("/predict", json=[RECORD] * 51)
        assert too_many.status_code == 422 and "limit of 50" in too_many.json()["message"]
        too_big = http.post("/predict", content=b"[" + b" " * 300_000 + b"]", headers=headers)
        assert too_big.status_code == 413
        limit = http.get("/model").json()["max_body_bytes"]

        def stream() -> Iterator[bytes]:  # sent chunked: no Content-Length to refuse it by
            yield b"["
            for _ in range(limit // 65536 + 2):
                yield b" " * 65536
            yield b"]"

        streamed = http.post("/predict", content=stream(), headers=headers)
        assert streamed.status_code == 413 and str(limit) in streamed.json()["message"]
        wrong = http.post("/predict", json={**RECORD, "flipper_length_mm": "long"})
        assert wrong.status_code == 422 and "flipper_length_mm" in wrong.json()["message"]


def expected_answers(settings: Settings, version: str) -> list[dict[str, float]]:
    """MLflow's own pyfunc answers of one registered version for RECORDS."""
    mlflow.set_tracking_uri(settings.tracking_uri)  # reset by the workspace fixture
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}")
    names = model.metadata.get_input_schema().input_names()
    frame = pd.DataFrame(RECORDS)
    for name in set(names) - set(frame.columns):  # not sent: missing, as NaN (as in training)
        frame[name] = pd.Series([np.nan] * len(frame), dtype=object)
    out = model.predict(frame[names])
    return [
        {c[len("proba_") :]: row[c] for c in out.columns if c.startswith("proba_")}
        for _, row in out.iterrows()
    ]


def test_hot_reload_under_concurrent_requests(
    settings: Settings,
    workspace: Path,
    tmp_path: Path,
    promote: Callable[[str], None],
    start_api: Callable[..., AbstractContextManager[Server]],
) -> None:
    """Move `champion` under 4 busy clients: none fails, each names the version that answered."""
    expected = {v: expected_answers(settings, v) for v in ("1", "2")}
    assert expected["1"][0] != pytest.approx(expected["2"][0])  # the versions are told apart
    results: list[list[tuple[str, int, str | None, int, dict]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(timeout=30) as http:
            for n in itertools.count():
                if stop.is_set() or n >= 3000:
                    return
                i = (k + n) % len(RECORDS)
                r = http.post(f"{server.url}/predict", json=RECORDS[i])
                body = r.json() if r.status_code == 200 else {}
                version = r.headers.get("x-model-version")
                answer = body["predictions"][0]["probabilities"] if body else {}
                results[k].append(
                    (r.headers.get("x-request-id", ""), r.status_code, version, i, answer)
                )

    def seen(version: str) -> bool:
        return any(v == version for res in results for _, _, v, _, _ in res)

    env = {"MLOPS_KIT_WORKSPACE": str(workspace), "MLOPS_KIT_RELOAD_INTERVAL": "0.2"}
    with start_api(tmp_path / "api.log", **env) as server:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while sum(map(len, results)) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        promote("2")
        while not seen("2") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # keep the load on after the swap
        stop.set()
        for t in threads:
            t.join(30)
    # the server has stopped gracefully: its prediction log is flushed

    responses = [r for res in results for r in res]
    assert all(status == 200 for _, status, _, _, _ in responses), (
        "a request failed during the swap"
    )
    assert seen("1") and seen("2")
    for res in results:  # per client, in order: v1 answers, then v2 answers, never back
        versions = [v for _, _, v, _, _ in res]
        assert versions == sorted(versions)
    for _, _, version, i, answer in responses:
        assert answer == pytest.approx(expected[version][i], rel=1e-9)
    logged = read_predictions(settings)
    assert len(logged) == len(responses)
    by_request = dict(zip(logged["request_id"], logged["model_version"], strict=True))
    assert all(by_request[rid] == version for rid, _, version, _, _ in responses)
