"""Property-based: schemathesis generates requests from the OpenAPI schema; none may get a 5xx."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from mlops_kit.config import Settings
from mlops_kit.serving.app import create_app

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
CASES = [  # GET endpoints take no input, so there is nothing to make invalid
    ("POST", "/predict", POSITIVE),
    ("POST", "/predict", NEGATIVE),
    ("POST", "/predict/columns", POSITIVE),
    ("POST", "/predict/columns", NEGATIVE),
    ("POST", "/invocations", NEGATIVE),  # JSON Schema cannot state dataframe_split's rows
    ("POST", "/admin/reload", POSITIVE),
    ("POST", "/admin/reload", NEGATIVE),
    ("GET", "/health", POSITIVE),
    ("GET", "/model", POSITIVE),
    ("GET", "/metrics", POSITIVE),
]


@pytest.fixture(scope="module")
def api_schema(registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The schema of an app serving the champion (schemathesis runs the app's lifespan)."""
    root = tmp_path_factory.mktemp("schemathesis")
    (root / "workspace").mkdir()
    shutil.copy2(registry.workspace / "mlflow.db", root / "workspace" / "mlflow.db")
    settings_ = Settings(
        workspace=root / "workspace", reload_interval=0, max_batch=20, admin_token="t0ken"
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(settings_))
    shutdown_lifespans()


def same_length(table: dict[str, list]) -> dict[str, list]:
    """Columns cut to the shortest: a rule of the API that JSON Schema cannot state."""
    rows = min(len(values) for values in table.values())
    return {name: values[:rows] for name, values in table.items()}


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=lambda v: str(v).strip("/"))
def test_no_generated_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    """Valid and invalid requests alike: never a 5xx, every answer as documented."""
    operation = api_schema[path][method]
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: schemathesis.Case) -> None:
        if path == "/predict/columns" and mode == POSITIVE:
            case.body = same_length(case.body)
        statuses.append(case.call_and_validate().status_code)

    check()
    assert statuses and max(statuses) < 500
    if path.startswith("/predict") and mode == POSITIVE:
        assert 200 in statuses  # the generator does reach the model, not only the validator
    if path.startswith("/predict") and mode == NEGATIVE:
        assert all(400 <= s < 500 for s in statuses)
