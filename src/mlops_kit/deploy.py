"""Level 2, CD through environments: staging first, then production, each an alias and an API.

    mlops-kit deploy --env staging      the candidate gets the alias `staging`; the staging API
                                        serves it; smoke test (health, version, environment, one
                                        prediction) and a soak (real requests from the held-out
                                        data, an error-rate and a p99 budget); on failure the alias
                                        goes back
    mlops-kit deploy --env production   only a version that passed staging gets `champion`; the
                                        production API is smoke-tested and rolled back on failure

The environments are declared once (``config.ENVIRONMENTS``). An environment's API that already
answers on its port is used as it is (it follows its alias); otherwise one is started for the
checks and stopped after them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import httpx
import numpy as np
import pandas as pd

from mlops_kit import data, registry, tracking
from mlops_kit.compare import SHADOW_MIN_PREDICTIONS, shadowed
from mlops_kit.config import ENVIRONMENTS, STAGING, DeployEnvironment, Settings
from mlops_kit.delivery import SMOKE_RELOAD_INTERVAL, Check, smoke_checks, wait_for_version
from mlops_kit.environment import environment_table
from mlops_kit.processes import HOST, free_port
from mlops_kit.services import Service, start_api
from mlops_kit.store import datasets

SOAK_REQUESTS = 200  # one-record requests the staging API answers before it is trusted
SOAK_ERROR_RATE = 0.01  # at most this share of them may fail
SOAK_P99_MS = 250.0  # and 99% of them must be answered within this


@dataclass
class Deployment:
    """What a delivery to one environment did: the checks, the alias moves, what it serves after."""

    environment: str
    version: str
    checks: list[Check] = field(default_factory=list)
    moves: list[str] = field(default_factory=list)  # the alias moves, in words
    serving_after: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    serving_environment: dict | None = None  # the API's check of it (GET /health)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    def table(self) -> pd.DataFrame:
        """The checks as a small table."""
        rows = [(c.name, "ok" if c.ok else "FAILED", c.detail) for c in self.checks]
        return pd.DataFrame(rows, columns=["check", "result", "detail"])

    def environment_table(self) -> pd.DataFrame | None:
        """Python and each package, trained with / here (None: no model was served)."""
        found = self.serving_environment
        return environment_table(found) if found else None

    def lines(self) -> list[str]:
        """A compact report for a terminal or a CI log."""
        verdict = "passed" if self.ok else "FAILED"
        out = [f"deploy v{self.version} to {self.environment}: {verdict}"]
        out += [f"  {'ok    ' if c.ok else 'FAILED'} {c.name:<12} {c.detail}" for c in self.checks]
        out += self.moves
        if self.serving_after:
            out.append(f"{self.environment} now serves v{self.serving_after}")
        return out + self.notes


def environment(name: str, port: int | None = None) -> DeployEnvironment:
    """An environment as declared (``config.ENVIRONMENTS``), on another port if given (0: a free
    one, as a notebook or a test beside a running API needs)."""
    if name not in ENVIRONMENTS:
        raise ValueError(f"no environment '{name}': choose one of {', '.join(ENVIRONMENTS)}")
    declared = ENVIRONMENTS[name]
    if port is None:
        return declared
    return replace(declared, port=port or free_port())


def candidate_version(settings: Settings) -> str:
    """The newest version that passed the quality gate: what staging receives by default."""
    client = tracking.client(settings)
    versions = client.search_model_versions(f"name = '{settings.model_name}'")
    passed = [int(v.version) for v in versions if v.tags.get("gate") == "passed"]
    if not passed:
        raise ValueError(
            f"no version of '{settings.model_name}' passed the quality gate: train one first "
            "(mlops-kit train), or name one with --version"
        )
    return str(max(passed))


def soak_records(settings: Settings, version: str) -> list[dict[str, object]]:
    """Real records for the soak: the held-out rows of the data the version was trained on."""
    tags = registry.version_tags(settings, version)
    data_version = tags.get("data_version", "")
    if datasets.has_version(settings, data_version):
        prepared = datasets.load_version(settings, data_version)
    else:  # registered by hand, or its catalogue is gone: the settings' table
        prepared = data.prepare(settings.table, settings, write=False)
    rows = prepared.X_eval.dropna(subset=prepared.spec.numeric)
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


def soak(
    api: Service,
    records: list[dict[str, object]],
    requests: int = SOAK_REQUESTS,
    p99_budget_ms: float = SOAK_P99_MS,
    error_budget: float = SOAK_ERROR_RATE,
) -> Check:
    """Send `requests` one-record requests; pass when errors and the p99 stay within budget."""
    latencies, errors = [], 0
    with httpx.Client(base_url=api.url, timeout=10.0) as http:
        for i in range(requests):
            started = time.perf_counter()
            try:
                ok = http.post("/predict", json=records[i % len(records)]).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            errors += not ok
    p50, p99 = np.percentile(latencies, [50, 99])
    rate = errors / requests
    detail = (
        f"{requests} requests, {errors} failed ({rate:.1%}, budget {error_budget:.0%}); "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (budget {p99_budget_ms:.0f} ms)"
    )
    return Check("soak", rate <= error_budget and p99 <= p99_budget_ms, detail)


@contextmanager
def environment_api(settings: Settings, env: DeployEnvironment) -> Iterator[tuple[Service, str]]:
    """The environment's API: the one answering on its port, or one started for the checks.

    One found running follows its alias: this waits until it serves the alias' version.
    """
    url = f"http://{HOST}:{env.port}"
    try:
        running = httpx.get(f"{url}/health", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        running = None
    if running is not None and running.get("alias") == env.alias:
        api = Service(url, env.port, None)
        wait_for_version(api, registry.alias_version(settings, env.alias) or "")
        yield api, f"the {env.name} API on {url} follows its alias"
        return
    api_settings = env.settings(settings).model_copy(
        update={"reload_interval": SMOKE_RELOAD_INTERVAL}
    )
    with start_api(api_settings, port=env.port, require_model=False) as api:
        yield api, f"no {env.name} API answered on {url}: one was started for the checks"


class EnvironmentAPIs(ExitStack):
    """The environments' APIs, each following its alias; ``close()`` (or a ``with``) stops them."""

    def __init__(self) -> None:
        super().__init__()
        self.apis: list[Service] = []

    def add(self, api: Service) -> None:
        """Keep an API started for an environment: stopped with the others."""
        self.apis.append(self.enter_context(api))

    def wait(self) -> EnvironmentAPIs:
        """Wait until every one answers (they start in ~3 s); stop them all if one does not."""
        try:
            for api in self.apis:
                api.wait()
        except BaseException:
            self.close()
            raise
        return self


def start_environment_apis(
    settings: Settings, *envs: DeployEnvironment, wait: bool = True
) -> EnvironmentAPIs:
    """Start the API of each environment on its port, side by side.

    Each follows its alias, so every delivery to it uses it as it is, as a long-lived environment
    would be used. ``wait=False``: return while they start (``wait()`` before delivering).
    """
    update = {"reload_interval": SMOKE_RELOAD_INTERVAL}
    started = EnvironmentAPIs()
    try:
        for env in envs:
            api_settings = env.settings(settings).model_copy(update=update)
            started.add(start_api(api_settings, port=env.port, require_model=False, wait=False))
    except BaseException:
        started.close()
        raise
    return started.wait() if wait else started


def environments_table(*envs: DeployEnvironment) -> pd.DataFrame:
    """Each environment as declared: the alias its API follows and where it logs predictions."""
    rows = [(env.name, env.alias, env.store_file or "the settings' store") for env in envs]
    return pd.DataFrame(rows, columns=["environment", "its API follows", "prediction log"])


@contextmanager
def _undone_on_error(undo: Callable[[], object]) -> Iterator[None]:
    """An alias move that is undone when its checks cannot run at all (the API does not start)."""
    try:
        yield
    except BaseException:
        undo()
        raise


def _move_staging(settings: Settings, version: str | None, reason: str) -> str | None:
    """Point `staging` at a version (None: take the alias off); the version it left."""
    client = tracking.client(settings)
    name = settings.model_name
    before = registry.alias_version(settings, STAGING, client)
    if version is None:
        client.delete_registered_model_alias(name, STAGING)
        return before
    client.set_registered_model_alias(name, STAGING, version)
    client.set_model_version_tag(name, version, "staging_since", _now())
    client.set_model_version_tag(name, version, "staging_reason", reason)
    client.set_model_version_tag(name, version, "previous_staging", before or "")
    return before


def _named(version: str | None) -> str:
    return f"v{version}" if version else "(none)"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def to_staging(
    settings: Settings, env: DeployEnvironment, version: str | None = None
) -> Deployment:
    """Give the candidate `staging`; smoke-test and soak the staging API; move back on failure."""
    version = version or candidate_version(settings)
    registry.version_tags(settings, version)  # refused here if the registry has no such version
    result = Deployment(env.name, version)
    started = time.perf_counter()
    before = _move_staging(settings, version, "deployed to staging")
    result.moves.append(f"{STAGING}: {_named(before)} -> v{version}")

    def undo() -> None:
        _move_staging(settings, before, "the staging checks could not run")

    with _undone_on_error(undo), environment_api(settings, env) as (api, how):
        result.notes.append(how)
        result.checks = smoke_checks(api, version, STAGING)
        result.serving_environment = api.get("/health").get("environment")
        if result.ok:
            result.checks.append(soak(api, soak_records(settings, version)))
        client = tracking.client(settings)
        if result.ok:
            client.set_model_version_tag(settings.model_name, version, "staging", "passed")
            result.serving_after = version
        else:
            failed = next(c for c in result.checks if not c.ok)
            client.set_model_version_tag(settings.model_name, version, "staging", "failed")
            client.set_model_version_tag(
                settings.model_name, version, "staging_failure", failed.name
            )
            client.set_model_version_tag(
                settings.model_name, version, "staging_failure_detail", failed.detail[:500]
            )
            _move_staging(settings, before, f"v{version} failed staging")
            result.moves.append(f"{STAGING}: v{version} -> {_named(before)} (it failed)")
            result.serving_after = wait_for_version(api, before) if before else None
    result.seconds = time.perf_counter() - started
    return result


def staging_verdict(settings: Settings, version: str) -> str:
    """Why a version may not go to production ('' when it passed staging)."""
    tags = registry.version_tags(settings, version)
    if tags.get("staging") == "passed":
        return ""
    if tags.get("staging") == "failed":
        return f"v{version} failed staging (check: {tags.get('staging_failure', '?')})"
    return f"v{version} was never deployed to staging: mlops-kit deploy --env staging first"


def to_production(
    settings: Settings,
    env: DeployEnvironment,
    version: str | None = None,
    require_shadow: bool = False,
) -> Deployment:
    """Give a version that passed staging `champion`; smoke-test production; roll back on failure.

    ``require_shadow``: also refuse a version that has not scored live traffic in shadow.
    """
    version = version or registry.alias_version(settings, STAGING)
    if version is None:
        raise ValueError("nothing is in staging: mlops-kit deploy --env staging first")
    refused = staging_verdict(settings, version)
    seen = shadowed(settings, version) if require_shadow else 0
    if require_shadow and not refused and seen < SHADOW_MIN_PREDICTIONS:
        refused = (
            f"v{version} scored {seen} live predictions in shadow, fewer than "
            f"{SHADOW_MIN_PREDICTIONS}: serve it with mlops-kit serve --shadow <its alias> first"
        )
    if refused:
        raise ValueError(f"refused: {refused}")
    result = Deployment(env.name, version)
    if require_shadow:
        result.notes.append(f"v{version} scored {seen} live predictions in shadow")
    started = time.perf_counter()
    moved = registry.champion_version(settings) != version
    if moved:
        move = registry.promote(settings, version, "passed staging", by="cd")
        result.moves.append(f"champion: {_named(move.from_version)} -> v{version}")

    def undo() -> None:
        if moved:
            registry.rollback(settings, "the production checks could not run")

    with _undone_on_error(undo), environment_api(settings, env) as (api, how):
        result.notes.append(how)
        result.checks = smoke_checks(api, version)
        result.serving_environment = api.get("/health").get("environment")
        if result.ok:
            result.serving_after = version
        else:
            failed = next(c for c in result.checks if not c.ok)
            try:
                back = registry.rollback(settings, f"production smoke test failed ({failed.name})")
            except ValueError as exc:  # nothing to go back to
                result.notes.append(f"no rollback possible: {exc}")
            else:
                moved = f"rolled back: champion v{back.from_version} -> v{back.to_version}"
                result.moves.append(moved)
                result.serving_after = wait_for_version(api, back.to_version)
    result.seconds = time.perf_counter() - started
    return result
