"""Load: ``models:/<name>@champion`` from the MLflow registry, as an immutable Champion.

With ``settings.model_uri`` (``mlops-kit serve --model-uri``) it loads that model package folder or
MLflow model URI once instead, and neither asks the registry nor polls it.

The Champion holds everything a request needs: the loaded model, its classes, the request models
generated from it (``inputs.py``) and, if one can be built, an accelerator (``accelerator.py``);
and, for /model and /health, how this environment compares with the one that trained it
(``environment.py``, checked once per version, on the directory the model was loaded from).

A request reads ``loader.current`` once and uses that object to validate, score and answer, so the
version named in a response is the version that scored it, even if a reload swaps the model while
the request is in flight. Reloads (the poller and the admin endpoint) are serialised by a lock that
the request path never takes. If the registry cannot be reached, the current model keeps serving and
the loader remembers the error for /health.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from mlops_kit.config import CHAMPION, MODEL_MANIFEST, Settings
from mlops_kit.environment import Environment, check_model_dir
from mlops_kit.scoring.inputs import (
    RequestModels,
    encoder_categories,
    file_headers,
    model_frame,
    other_columns,
    request_models,
    signature_inputs,
)

log = logging.getLogger(__name__)

MODELS_URI = re.compile(r"models:/([^/@]+)(?:/(\d+)|@([\w-]+))")  # a registered model's URI
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


class NoChampion(Exception):
    """The registry answered, but no version carries the alias."""


class RegistryUnavailable(Exception):
    """The registry could not be asked (server down, database missing, …)."""


@dataclass(frozen=True)
class Champion:
    """One loaded model version with everything a request needs; never mutated after it is built."""

    name: str
    version: str
    alias: str | None  # None: a fixed model URI, served without the registry
    run_id: str | None
    tags: dict[str, str]
    metrics: dict[str, float]
    classes: list[str]
    inputs: RequestModels
    pipeline: Any  # the fitted scikit-learn Pipeline inside the pyfunc model
    accelerator: Any  # an accelerator.Accelerator, or None: the pipeline scores
    examples: list[dict[str, Any]]
    source: str
    environment: Environment | None = None  # None: built in memory, nothing recorded to compare
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def scoring(self) -> str:
        """Which path scores requests: "accelerator" or the "model" itself."""
        return "model" if self.accelerator is None else "accelerator"

    def info(self) -> dict[str, Any]:
        """Facts for GET /model (without the threshold, which is the API's)."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "data_version": self.tags.get("data_version"),
            "candidate": self.tags.get("candidate"),
            "gate": self.tags.get("gate"),
            "metrics": self.metrics,
            "classes": self.classes,
            "inputs": {f.name: f.describe() for f in self.inputs.fields},
            "file_headers": self.inputs.file_headers,
            "ignored_columns": self.inputs.ignored,
            "record_key": self.inputs.key.shown if self.inputs.key else None,
            "required": self.inputs.required,
            "categories": self.inputs.categories,
            "max_batch": self.inputs.max_batch,
            "max_body_bytes": self.inputs.body_limit,
            "scoring": self.scoring,
            "loaded_at": self.loaded_at,
            "source": self.source,
            "environment": self.environment_check(),
        }

    def environment_check(self) -> dict[str, Any] | None:
        """This environment against the model's recorded one, as JSON (None: nothing recorded)."""
        return self.environment.as_dict() if self.environment else None


def _examples(loaded: Any, names: list[str]) -> list[dict[str, Any]]:
    try:
        example = loaded.input_example
    except Exception:  # noqa: BLE001 - an example is a convenience, not a requirement
        return []
    if example is None or not hasattr(example, "to_dict"):
        return []
    rows = example.astype(object).where(example.notna(), None).to_dict("records")
    return [{k: v for k, v in r.items() if k in names} for r in rows]


def _accelerator(pipeline: Any, examples: list[dict[str, Any]], inputs: RequestModels) -> Any:
    """The accelerator of the pipeline, or None where it cannot reproduce the model."""
    from mlops_kit.scoring import accelerator  # only imported when the setting asks for it

    frame = model_frame({n: [r.get(n) for r in examples] for n in inputs.names}, inputs)
    try:
        return accelerator.build(pipeline, frame if len(frame) else None)
    except accelerator.Unsupported as exc:
        log.info("scoring through the model itself: %s", exc)
        return None


def build_champion(
    local_path: str,
    *,
    name: str,
    version: str,
    alias: str,
    run_id: str | None,
    tags: dict[str, str],
    metrics: dict[str, float],
    source: str,
    max_batch: int,
    accelerate: bool,
) -> Champion:
    """Load a downloaded pyfunc model: its request models, accelerator and environment check."""
    import mlflow.pyfunc

    # MLflow's own requirements check lists every installed distribution's files (~0.25 s of a
    # start); the kit's environment check (environment.check_model_dir) compares the same
    # requirements and reports them in /health and /model
    loaded = mlflow.pyfunc.load_model(local_path, suppress_warnings=True)
    pipeline = getattr(loaded.unwrap_python_model(), "pipeline", None)
    if pipeline is None or not hasattr(pipeline, "predict_proba"):
        raise ValueError(f"{name} v{version} is not a mlops-kit classifier (no .pipeline)")
    inputs = request_models(
        signature_inputs(loaded),
        encoder_categories(pipeline),
        max_batch,
        file_headers(loaded),
        *other_columns(loaded),
    )
    examples = _examples(loaded, inputs.names)
    return Champion(
        name=name,
        version=version,
        alias=alias,
        run_id=run_id,
        tags=tags,
        metrics=metrics,
        classes=[str(c) for c in pipeline.classes_],
        inputs=inputs,
        pipeline=pipeline,
        accelerator=_accelerator(pipeline, examples, inputs) if accelerate else None,
        examples=examples,
        source=source,
        environment=check_model_dir(local_path),
    )


@dataclass
class RegistryState:
    """What the loader last heard from the registry."""

    reachable: bool | None = None
    last_check: str | None = None
    error: str | None = None


class ChampionLoader:
    """Holds the current Champion; loads it, polls the alias, swaps in new versions."""

    def __init__(self, settings: Settings, alias: str = CHAMPION) -> None:
        self.settings = settings
        self.alias = alias
        self.current: Champion | None = None
        self.registry = RegistryState()
        self._client: Any = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- registry access ---------------------------------------------------------------------

    def _mlflow_client(self) -> Any:
        s = self.settings
        if not s.has_registry:
            raise RegistryUnavailable(
                f"no MLflow database at {s.mlflow_db} yet: train a model first (mlops-kit train)"
            )
        if self._client is None:
            from mlops_kit.tracking import client

            self._client = client(s)
        return self._client

    def _resolve(self) -> Any:
        """The model version the alias points at now."""
        name = self.settings.model_name
        try:
            return self._mlflow_client().get_model_version_by_alias(name, self.alias)
        except MlflowException as exc:
            if exc.error_code in _NOT_FOUND:
                raise NoChampion(
                    f"no version of '{name}' has the alias '{self.alias}' yet: "
                    "train and promote one (mlops-kit train)"
                ) from exc
            raise RegistryUnavailable(_short(exc)) from exc
        except (NoChampion, RegistryUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - connection errors come in many types
            raise RegistryUnavailable(_short(exc)) from exc

    def _load(self, mv: Any, alias: str | None) -> Champion:
        """A registered model version, downloaded from the kit's registry and built."""
        import mlflow.artifacts

        client = self._mlflow_client()
        name, version = str(mv.name), str(mv.version)
        source = client.get_model_version_download_uri(name, version)
        try:
            metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
        except Exception:  # noqa: BLE001 - a deleted run must not block serving
            metrics = {}
        tmp = tempfile.mkdtemp(prefix="mlops-kit-model-")
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=self.settings.tracking_uri
            )
            return build_champion(
                local,
                name=name,
                version=version,
                alias=alias,
                run_id=mv.run_id,
                tags=dict(mv.tags or {}),
                metrics=metrics,
                source=source,
                max_batch=self.settings.max_batch,
                accelerate=self.settings.accelerator,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # --- reloading ---------------------------------------------------------------------------

    def check(self) -> tuple[bool, str]:
        """Ask where the alias points; load and swap if it moved. Returns (swapped, message)."""
        if self.settings.model_uri:
            return self._check_fixed(self.settings.model_uri)
        with self._reload_lock:
            now = datetime.now(UTC).isoformat(timespec="seconds")
            before, mv = self.current, None
            try:
                mv = self._resolve()
                if before is not None and str(mv.version) == before.version:
                    message = f"{before.name}@{self.alias} is still v{before.version}"
                    self._note(True, now, None)
                    return False, message
                champion = self._load(mv, self.alias)
            except NoChampion as exc:
                self._note(True, now, str(exc))
                return False, str(exc)
            except RegistryUnavailable as exc:
                self._note(False, now, f"registry unreachable: {exc}")
                return False, f"registry unreachable: {exc}"
            except Exception as exc:  # noqa: BLE001 - a broken new version must not stop serving
                version = getattr(mv, "version", "?")
                message = f"could not load {self.settings.model_name} v{version}: {_short(exc)}"
                self._note(True, now, message)
                return False, message
            self.current = champion  # the swap: one reference assignment
            self._note(True, now, None)
            was = f" (was v{before.version})" if before else ""
            message = (
                f"serving {champion.name} v{champion.version}{was}, scoring: {champion.scoring}"
            )
            log.info(message)
            return True, message

    def _check_fixed(self, uri: str) -> tuple[bool, str]:
        """A fixed model URI: load it the first time; it never changes, the registry is not asked."""
        with self._reload_lock:
            if self.current is not None:
                return False, f"serving the fixed model {uri} (no registry, no reload)"
            try:
                champion = self._load_uri(uri)
            except Exception as exc:  # noqa: BLE001 - /health says why nothing is served
                message = f"could not load {uri}: {_short(exc)}"
                self._note(None, datetime.now(UTC).isoformat(timespec="seconds"), message)
                return False, message
            self.current = champion
            message = f"serving {champion.name} v{champion.version} from {uri} (a fixed model: never reloaded)"
            log.info(message)
            return True, message

    def _registered(self, name: str, version: str | None, alias: str | None) -> Any:
        """The version a ``models:/`` URI names, asked of the kit's registry (not ./mlflow.db)."""
        client = self._mlflow_client()
        try:
            if alias:
                return client.get_model_version_by_alias(name, alias)
            return client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise ValueError(
                f"the registry at {self.settings.registry_uri} has no "
                f"{name} {'@' + alias if alias else 'v' + str(version)}: {_short(exc)}"
            ) from exc

    def _load_uri(self, uri: str) -> Champion:
        """A model package folder (its manifest names the model) or any MLflow model URI.

        A ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` URI is resolved once, in the
        kit's registry, and served with its name and version (never followed: a fixed model).
        """
        import mlflow.artifacts

        registered = MODELS_URI.fullmatch(uri)
        if registered:
            return self._load(self._registered(*registered.groups()), alias=None)
        manifest_file = Path(uri).expanduser() / MODEL_MANIFEST
        facts = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
        tmp = tempfile.mkdtemp(prefix="mlops-kit-model-")
        try:
            if facts:
                local = str(manifest_file.parent / facts["model_path"])
            else:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=self.settings.tracking_uri
                )
            return build_champion(
                local,
                name=facts.get("model_name", self.settings.model_name),
                version=str(facts.get("version", "unknown")),
                alias=None,
                run_id=facts.get("run_id"),
                tags=facts.get("tags", {}),
                metrics=facts.get("metrics", {}),
                source=uri,
                max_batch=self.settings.max_batch,
                accelerate=self.settings.accelerator,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _note(self, reachable: bool | None, when: str, error: str | None) -> None:
        previous = self.registry.error
        self.registry = RegistryState(reachable, when, error)
        if error and error != previous:  # say it once, not at every poll
            log.warning(
                "%s; serving %s", error, f"v{self.current.version}" if self.current else "nothing"
            )
        elif previous and not error:
            log.info("registry answers again")

    def start(self) -> None:
        """Load the champion now (if there is one) and start polling the alias in the background."""
        self.check()
        interval = self.settings.reload_interval
        if interval > 0 and not self.settings.model_uri:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._poll, args=(interval,), name="champion-poller", daemon=True
            )
            self._thread.start()

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the poller must outlive any single failure
                log.exception("champion poll failed")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
