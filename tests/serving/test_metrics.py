"""GET /metrics: what the API counts, in one process, across 2 workers, and in a real Prometheus."""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlops_kit import services
from mlops_kit.config import CHAMPION, Settings
from mlops_kit.serving.metrics import observe_many
from mlops_kit.store.predictions.window import read_predictions
from tests.helpers import clear_env, reset_mlflow

from .conftest import RECORD
from .test_server import RECORDS

BAD = [  # (body, headers, status, reason): requests the API refuses
    ({**RECORD, "flipper_length_mm": "long"}, {}, 422, None),  # reason: the problem's own type
    (b'{"island": ', {"Content-Type": "application/json"}, 400, "invalid_json"),
    (b"island=Dream", {"Content-Type": "text/plain"}, 415, "not_json"),
]


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The (labels, value) samples of one metric in a scrape."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def samples_of(text: str, family: str) -> list:
    """Every sample of one metric family (a histogram's buckets, count and sum), no timestamps."""
    return [
        sample
        for fam in text_string_to_metric_families(text)
        if fam.name == family
        for sample in fam.samples
        if not sample.name.endswith("_created")
    ]


def total(text: str, name: str, **labels: str) -> float:
    """The sum of one metric's samples whose labels include ``labels``."""
    return sum(v for got, v in samples(text, name) if labels.items() <= got.items())


def test_a_batch_observed_at_once_scrapes_as_observed_one_by_one() -> None:
    values = [random.Random(i).random() for i in range(500)] + [0.7, 1.0, 0.0]
    scraped = []
    for bulk in (False, True):
        registry = CollectorRegistry()
        histogram = Histogram("c", "c", buckets=(0.5, 0.7, 0.9, 1.0), registry=registry)
        if bulk:
            observe_many(histogram, values)
        else:
            for value in values:
                histogram.observe(value)
        text = generate_latest(registry).decode()
        scraped.append({(s.name, s.labels.get("le")): s.value for s in samples_of(text, "c")})
    one_by_one, at_once = scraped
    assert at_once.pop(("c_sum", None)) == pytest.approx(one_by_one.pop(("c_sum", None)))
    assert at_once == one_by_one and one_by_one[("c_count", None)] == len(values)
    assert one_by_one[("c_bucket", "0.7")] == sum(v <= 0.7 for v in values)


def test_metrics_count_answers_refusals_and_the_backlog(client) -> None:
    answered = client.post("/predict", json=RECORDS[:3])
    assert answered.status_code == 200
    flagged = sum(p["low_confidence"] for p in answered.json()["predictions"])
    assert client.post("/predict", json={**RECORD, "body_mass_g": "heavy"}).status_code == 422
    assert (
        client.post("/predict/columns", content=b"[", headers={"Content-Type": "x"}).status_code
        == 415
    )

    scrape = client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    classes = Counter(p["predicted"] for p in answered.json()["predictions"])
    for predicted, count in classes.items():
        assert (
            total(text, "mlops_kit_predictions_total", model_version="1", **{"class": predicted})
            == count
        )
    assert total(text, "mlops_kit_prediction_confidence_count", model_version="1") == 3
    assert total(text, "mlops_kit_low_confidence_predictions_total") == flagged
    assert total(text, "mlops_kit_refused_requests_total", status="422") == 1
    assert total(text, "mlops_kit_refused_requests_total", status="415", reason="not_json") == 1
    requests = "mlops_kit_http_request_duration_seconds_count"
    assert total(text, requests, endpoint="/predict", status="200") == 1
    assert total(text, requests, endpoint="/predict/columns", status="415") == 1
    assert samples(text, "mlops_kit_prediction_log_backlog_rows")
    assert samples(text, "process_resident_memory_bytes")  # one process: its own CPU and memory


# --- two workers -------------------------------------------------------------------------------


@dataclass
class Workers:
    """An API with 2 worker processes, and what the tests had answered by it."""

    api: services.Service
    settings: Settings
    answered: list[dict] = field(default_factory=list)  # every prediction in a 200 answer
    refused: Counter = field(default_factory=Counter)  # (status, reason) of refused requests

    def post(self, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
        """One request on a new connection (so that either worker may take it)."""
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = httpx.post(f"{self.api.url}/predict", headers=headers, timeout=30, **kwargs)
        if response.status_code == 200:
            self.answered += response.json()["predictions"]
        return response

    def healths(self, until: float = 30.0) -> dict[int, dict]:
        """The latest /health of each worker, asked on new connections until both answered."""
        seen: dict[int, dict] = {}
        deadline = time.monotonic() + until
        while (len(seen) < 2 or any(h["prediction_log"]["pending"] for h in seen.values())) and (
            time.monotonic() < deadline
        ):
            health = httpx.get(f"{self.api.url}/health", timeout=10).json()
            seen[health["pid"]] = health
        return seen


@pytest.fixture(scope="module")
def workers(registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """`mlops-kit serve --workers 2` on a copy of the trained registry (v1 champion)."""
    root = tmp_path_factory.mktemp("two-workers")
    (root / "workspace").mkdir()
    shutil.copy2(registry.workspace / "mlflow.db", root / "workspace" / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        settings = Settings(
            workspace=root / "workspace", runs_dir=root / "runs", reload_interval=0.5
        )
        with services.start_api(settings, log=root / "api.log", workers=2) as api:
            yield Workers(api, settings)
        reset_mlflow()


def scrape(workers: Workers) -> str:
    """GET /metrics from whichever worker answers."""
    return httpx.get(f"{workers.api.url}/metrics", timeout=10).text


def test_two_workers_count_and_log_every_prediction_once(workers: Workers) -> None:
    def client(k: int) -> None:
        rng = random.Random(k)
        for _ in range(15):
            assert (
                workers.post(rng.sample(RECORDS, rng.randint(1, len(RECORDS)))).status_code == 200
            )

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for body, headers, status, reason in BAD:
        refused = workers.post(body, headers)
        assert refused.status_code == status
        workers.refused[str(status), reason or refused.json()["detail"][0]["type"]] += 1

    healths = workers.healths()
    assert len(healths) == 2, "both workers answer on the one port"
    written = {pid: h["prediction_log"]["written"] for pid, h in healths.items()}
    assert all(written.values()), f"each worker served and logged predictions: {written}"
    assert sum(written.values()) == len(workers.answered)
    logged = read_predictions(workers.settings)
    assert len(logged) == len(workers.answered)  # each prediction logged once
    assert not logged.duplicated(["request_id", "record_index"]).any()

    text = scrape(workers)  # one worker answers for both
    assert total(text, "mlops_kit_predictions_total") == len(workers.answered)
    by_class = Counter(p["predicted"] for p in workers.answered)
    for predicted, count in by_class.items():
        assert total(text, "mlops_kit_predictions_total", **{"class": predicted}) == count
    flagged = sum(p["low_confidence"] for p in workers.answered)
    assert total(text, "mlops_kit_low_confidence_predictions_total") == flagged
    assert total(text, "mlops_kit_prediction_confidence_count") == len(workers.answered)
    for (status, reason), count in workers.refused.items():
        assert (
            total(text, "mlops_kit_refused_requests_total", status=status, reason=reason) == count
        )
    deadline = time.monotonic() + 10  # each worker samples its backlog every second
    while total(text, "mlops_kit_prediction_log_backlog_rows") and time.monotonic() < deadline:
        time.sleep(0.2)
        text = scrape(workers)
    assert total(text, "mlops_kit_prediction_log_backlog_rows") == 0


@pytest.fixture
def prometheus(workers: Workers, tmp_path: Path) -> Iterator[services.Service]:
    """A real Prometheus on 127.0.0.1 scraping the API every second (CI: it must be installed)."""
    if shutil.which("prometheus") is None:
        message = "the prometheus binary is missing: run `make system-deps` (Debian package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    target = f"127.0.0.1:{workers.api.port}"
    with services.start_prometheus([target], tmp_path / "prometheus", interval=1) as server:
        yield server


def query(prometheus: services.Service, promql: str) -> dict:
    """Prometheus' HTTP API answer to an instant query."""
    return prometheus.get(f"/api/v1/query?{urllib.parse.urlencode({'query': promql})}")


def test_prometheus_scrapes_every_workers_predictions(
    workers: Workers, prometheus: services.Service
) -> None:
    for body in (RECORDS, RECORDS[:1], RECORDS[1:]):
        assert workers.post(body).status_code == 200
    expected = len(workers.answered)

    counted, deadline = None, time.monotonic() + 30
    while counted != expected and time.monotonic() < deadline:
        result = query(prometheus, "sum(mlops_kit_predictions_total)").get("data", {})
        counted = int(float(result["result"][0]["value"][1])) if result.get("result") else None
        time.sleep(0.5)
    assert counted == expected
    share = "sum(mlops_kit_low_confidence_predictions_total) / sum(mlops_kit_predictions_total)"
    value = float(query(prometheus, share)["data"]["result"][0]["value"][1])
    assert value == pytest.approx(sum(p["low_confidence"] for p in workers.answered) / expected)
    rate = (  # the README's query: the share of low-confidence predictions over 5 minutes
        "sum(rate(mlops_kit_low_confidence_predictions_total[5m]))"
        " / sum(rate(mlops_kit_predictions_total[5m]))"
    )
    assert query(prometheus, rate)["status"] == "success"


def test_every_worker_follows_the_champion(workers: Workers) -> None:
    client = MlflowClient(workers.settings.tracking_uri, workers.settings.registry_uri)
    client.set_registered_model_alias(workers.settings.model_name, CHAMPION, "2")
    versions: dict[int, str] = {}
    deadline = time.monotonic() + 30
    while not (len(versions) == 2 and set(versions.values()) == {"2"}):
        assert time.monotonic() < deadline, f"workers still serve {versions}"
        health = httpx.get(f"{workers.api.url}/health", timeout=10).json()
        versions[health["pid"]] = health["model_version"]
    assert workers.post(RECORD).headers["x-model-version"] == "2"
