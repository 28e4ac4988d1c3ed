"""Level 2, CD: deploy the champion, smoke-test the API serving it, roll the alias back if it fails.

The smoke test includes the symmetry between environments: the API reports how its Python and
packages compare with the ones that trained the model (``environment.py``), and a difference beyond
a patch version fails the deployment like a failed prediction does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from mlops_kit import environment, registry
from mlops_kit.config import CHAMPION, Settings
from mlops_kit.services import Service, start_api

# the checks' API polls the registry this often (seconds): an alias move is seen within it, and a
# poll that finds nothing new costs ~2 ms of the API's CPU (SQLite registry, 2-core machine)
SMOKE_RELOAD_INTERVAL = 0.25


@dataclass
class Check:
    """One smoke-test check: what was checked, whether it passed, and what was seen."""

    name: str
    ok: bool
    detail: str


@dataclass
class SmokeResult:
    """The outcome of a deployment smoke test, and the rollback it caused, if any."""

    model_name: str
    expected_version: str
    checks: list[Check]
    rollback: registry.AliasMove | None = None
    serving_after: str | None = None
    notes: list[str] = field(default_factory=list)
    environment: dict | None = None  # the API's environment check of the model it served
    seconds: float = 0.0  # wall time: API start, checks, and rollback if any

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def table(self) -> pd.DataFrame:
        """The checks as a small table."""
        return pd.DataFrame(
            [(c.name, "ok" if c.ok else "FAILED", c.detail) for c in self.checks],
            columns=["check", "result", "detail"],
        )

    def environment_table(self) -> pd.DataFrame | None:
        """Python and each package, trained with / here (None: no model was served)."""
        return environment.environment_table(self.environment) if self.environment else None

    def lines(self) -> list[str]:
        """A compact report for a terminal or a CI log."""
        out = [f"smoke test of {self.model_name} v{self.expected_version}:"]
        out += [f"  {'ok    ' if c.ok else 'FAILED'} {c.name:<12} {c.detail}" for c in self.checks]
        if self.environment:
            out += environment.table_lines(self.environment)
        if self.rollback:
            out.append(
                f"rolled back: champion v{self.rollback.from_version} -> v{self.rollback.to_version}"
            )
        if self.serving_after:
            out.append(f"the API now serves v{self.serving_after}")
        out += self.notes
        return out


def _example_record(api: Service) -> dict | None:
    """The served model's own input example, as published on the API's OpenAPI page."""
    body = api.get("/openapi.json")["paths"]["/predict"]["post"]["requestBody"]
    examples = body["content"]["application/json"].get("examples", {})
    return examples.get("one record", {}).get("value")


def smoke_checks(api: Service, expected: str, alias: str = CHAMPION) -> list[Check]:
    """Health, model version against the registry's alias, and one real prediction."""
    health = api.get("/health")
    loaded = bool(health.get("model_loaded"))
    checks = [
        Check(
            "health",
            health.get("status") == "ok" and loaded,
            f"status={health.get('status')}, model loaded={loaded}",
        )
    ]
    served = str(health.get("model_version")) if loaded else None
    checks.append(
        Check(
            "version",
            served == expected,
            f"API serves v{served}, registry {alias} is v{expected}"
            if served
            else f"API serves no model, registry {alias} is v{expected}",
        )
    )
    checks.append(environment_check(health.get("environment")))
    record = _example_record(api) if loaded else None
    if record is None:
        checks.append(Check("prediction", False, "no model to ask"))
        return checks
    status, answer = api.post("/predict", record)
    prediction = (answer.get("predictions") or [{}])[0]
    confidence = prediction.get("confidence")
    good = (
        status == 200
        and str(prediction.get("model_version")) == expected
        and isinstance(confidence, float)
        and 0.0 <= confidence <= 1.0
    )
    detail = (
        f"HTTP {status}: {prediction.get('predicted')} ({confidence:.2f}) by v{prediction.get('model_version')}"
        if status == 200
        else f"HTTP {status}: {answer.get('message', '')[:120]}"
    )
    checks.append(Check("prediction", good, detail))
    return checks


def environment_check(found: dict | None) -> Check:
    """The API's environment against the model's: a difference beyond a patch version fails."""
    if found is None:
        return Check("environment", False, "no model to compare")
    return Check("environment", bool(found["match"]), environment.summary(found))


def wait_for_version(api: Service, version: str, timeout: float = 30.0) -> str | None:
    """Wait until the API serves a version (it follows the alias); the version it serves at the end.

    It stops waiting as soon as the API says it could not load that version (a broken model).
    """
    deadline = time.monotonic() + timeout
    served = None
    while time.monotonic() < deadline:
        health = api.get("/health")
        served = str(health["model_version"]) if health.get("model_loaded") else None
        error = (health.get("registry") or {}).get("error") or ""
        if served == version or f" v{version}: " in error:
            return served
        time.sleep(0.05)
    return served


def deploy_smoke(settings: Settings, rollback_on_failure: bool = True) -> SmokeResult:
    """Start the API on the champion, smoke-test it; on failure roll the alias back and verify."""
    expected = registry.champion_version(settings)
    if expected is None:
        raise ValueError(f"model '{settings.model_name}' has no champion to deploy")
    started = time.perf_counter()
    api_settings = settings.model_copy(update={"reload_interval": SMOKE_RELOAD_INTERVAL})
    with start_api(api_settings, require_model=False) as api:
        result = SmokeResult(settings.model_name, expected, smoke_checks(api, expected))
        result.environment = api.get("/health").get("environment")
        if result.ok:
            result.serving_after = expected
        elif rollback_on_failure:
            _roll_back(api, result, settings)
    result.seconds = time.perf_counter() - started
    return result


def _roll_back(api: Service, result: SmokeResult, settings: Settings) -> None:
    failed = next(c for c in result.checks if not c.ok)
    try:
        result.rollback = registry.rollback(
            settings, f"smoke test failed ({failed.name}: {failed.detail})"
        )
    except ValueError as exc:
        result.notes.append(f"no rollback possible: {exc}")
        return
    result.serving_after = wait_for_version(api, result.rollback.to_version)
    if result.serving_after != result.rollback.to_version:
        result.notes.append("the API did not pick up the restored champion in time")
