"""Model registry: register the best candidate, gate it, and move the `champion` alias only when it earns it."""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_kit.config import CHAMPION, Settings
from mlops_kit.data import PreparedData, prepare
from mlops_kit.evaluation import GATE_METRICS, MissingInputsError, evaluate_logged
from mlops_kit.store import datasets
from mlops_kit.tracking import client as make_client

CHALLENGER = "challenger"


@dataclass
class GateDecision:
    """What the quality gate decided about a newly registered version, and why."""

    model_name: str
    version: str
    promoted: bool
    reason: str
    metric: str
    score: float
    threshold: float
    previous_champion: str | None
    champion_score: float | None
    champion_version: str | None
    in_shadow: bool = False  # it passed, and scores live traffic as `challenger` before promotion

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)

    def outcome_rows(self) -> list[tuple[str, str]]:
        """The last rows of a run's summary table: promoted or not, why, and the champion now."""
        return [
            ("promoted to champion", "yes" if self.promoted else self._not_promoted()),
            ("reason", self.reason),
            ("champion now", f"v{self.champion_version}" if self.champion_version else "none"),
        ]

    def _not_promoted(self) -> str:
        return "not yet: challenger in shadow" if self.in_shadow else "no"


def log_decision(decision: GateDecision, best_candidate: str) -> None:
    """Tag the active MLflow run with what the gate decided, and keep the decision as JSON."""
    mlflow.set_tags(
        {
            "best_candidate": best_candidate,
            "registered_version": decision.version,
            "promoted": str(decision.promoted).lower(),
            "in_shadow": str(decision.in_shadow).lower(),
            "gate_reason": decision.reason,
        }
    )
    mlflow.log_dict(decision.to_dict(), "gate_decision.json")


def alias_version(settings: Settings, alias: str, client: MlflowClient | None = None) -> str | None:
    """The version number an alias points at, or None (also where no registry exists)."""
    if not settings.has_registry:
        return None  # asking would create the embedded database
    client = client or make_client(settings)
    try:
        return str(client.get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException:
        return None


def champion_version(settings: Settings, client: MlflowClient | None = None) -> str | None:
    """The version number the `champion` alias points at, or None (also where no registry exists)."""
    return alias_version(settings, CHAMPION, client)


def champion_data(settings: Settings) -> tuple[str, PreparedData]:
    """The champion's version and the data version it was trained on."""
    version = champion_version(settings)
    if version is None:
        raise ValueError("there is no champion to retrain: train one first (mlops-kit train)")
    client = make_client(settings)
    tags = client.get_model_version(settings.model_name, version).tags
    data_version = tags.get("data_version", "")
    if datasets.has_version(settings, data_version):
        return version, datasets.load_version(settings, data_version)
    # the catalogue was removed (make reset keeps MLflow elsewhere): rebuild it from the raw data
    return version, prepare(settings.table, settings)


def gate_rule(
    settings: Settings, threshold: float | None = None, metric: str | None = None
) -> tuple[float, str]:
    """The gate's threshold and metric (the settings' unless given), refused when they make no sense."""
    threshold = settings.quality_gate if threshold is None else threshold
    metric = metric or settings.gate_metric
    if metric not in GATE_METRICS:
        raise ValueError(f"gate metric must be one of {', '.join(GATE_METRICS)}, not '{metric}'")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"quality gate must be between 0 and 1, not {threshold}")
    return threshold, metric


def register(settings: Settings, model_uri: str, tags: dict[str, str] | None = None) -> str:
    """Register a logged model as a new version of the kit's model; return the version number."""
    with contextlib.redirect_stderr(io.StringIO()):  # mlflow prints "Created version ..." itself
        return str(mlflow.register_model(model_uri, settings.model_name, tags=tags or {}).version)


def register_and_gate(
    model_uri: str,
    score: float,
    prepared: PreparedData,
    settings: Settings,
    *,
    threshold: float,
    metric: str,
    tags: dict[str, str] | None = None,
    shadow_first: bool = False,
) -> GateDecision:
    """Register the model as a new version; give it `champion` only if it passes the gate and beats the champion.

    ``shadow_first``: a version that earns it gets `challenger` instead, to score live traffic in
    shadow (``mlops-kit serve --shadow challenger``) until ``compare.promote_challenger``.
    """
    threshold, metric = gate_rule(settings, threshold, metric)
    client = make_client(settings)
    version = register(settings, model_uri, tags)
    previous = champion_version(settings, client)
    champion_score = None
    if score < threshold:
        promoted = False
        reason = f"{metric}={score:.4f} is below the quality gate ({threshold:.4f})"
    elif previous is None:
        promoted = True
        reason = (
            f"{metric}={score:.4f} passes the gate ({threshold:.4f}) and there is no champion yet"
        )
    else:
        champion_uri = f"models:/{settings.model_name}@{CHAMPION}"
        try:
            champion_score = evaluate_logged(champion_uri, prepared, settings.low_confidence)[
                metric
            ]
        except Exception as exc:  # noqa: BLE001 - any failure means the two cannot be compared
            promoted = False
            why = (
                f"it needs {', '.join(exc.columns)}"
                if isinstance(exc, MissingInputsError)
                else type(exc).__name__
            )
            reason = (
                f"champion v{previous} cannot be evaluated on this data ({why}); "
                "use another model name for a different table"
            )
        else:
            promoted = score > champion_score
            verdict = "beats" if promoted else "does not beat"
            reason = (
                f"{metric}={score:.4f} {verdict} champion v{previous} "
                f"({champion_score:.4f}) on the same evaluation data"
            )
    in_shadow = promoted and shadow_first and previous is not None
    if in_shadow:
        promoted = False
        reason += "; it scores live traffic in shadow before it is promoted"
    decision = GateDecision(
        model_name=settings.model_name,
        version=str(version),
        promoted=promoted,
        reason=reason,
        metric=metric,
        score=score,
        threshold=threshold,
        previous_champion=previous,
        champion_score=champion_score,
        champion_version=str(version) if promoted else previous,
        in_shadow=in_shadow,
    )
    _record(client, decision, prepared)
    return decision


def _record(client: MlflowClient, decision: GateDecision, prepared: PreparedData) -> None:
    name, version = decision.model_name, decision.version
    facts = {
        "data_version": prepared.card.data_version,
        "gate": "passed" if decision.promoted or decision.in_shadow else "refused",
        "gate_reason": decision.reason,
        f"eval_{decision.metric}": f"{decision.score:.4f}",
        "gate_threshold": f"{decision.threshold:.4f}",
        "previous_champion": decision.previous_champion or "",
    }
    for key, value in facts.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=decision.reason)
    if decision.promoted:
        _move_champion(client, name, version, decision.reason, "gate")
    else:
        client.set_registered_model_alias(name, CHALLENGER, version)


@dataclass
class AliasMove:
    """A move of the `champion` alias: from which version to which, by whom, and why."""

    model_name: str
    from_version: str | None
    to_version: str
    reason: str
    by: str


def _move_champion(
    client: MlflowClient,
    name: str,
    version: str,
    reason: str,
    by: str,
    record_previous: bool = True,
) -> AliasMove:
    try:
        current = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        current = None
    client.set_registered_model_alias(name, CHAMPION, version)
    tags = {
        "champion_since": datetime.now(UTC).isoformat(timespec="seconds"),
        "promoted_by": by,
        "promotion_reason": reason,
    }
    if record_previous:
        tags["previous_champion"] = current or ""
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return AliasMove(name, current, version, reason, by)


def promote(settings: Settings, version: str | int, reason: str, by: str = "manual") -> AliasMove:
    """Point `champion` at a version (by hand, or by CD); the reason and previous champion are kept."""
    client = make_client(settings)
    name, version = settings.model_name, str(version)
    if not reason.strip():
        raise ValueError("a promotion needs a reason (it is recorded on the model version)")
    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise ValueError(f"model '{name}' has no version {version}") from None
    if champion_version(settings, client) == version:
        raise ValueError(f"version {version} of '{name}' is already the champion")
    return _move_champion(client, name, version, reason, by)


def rollback(settings: Settings, reason: str) -> AliasMove:
    """Move `champion` back to the version it replaced; the rolled-back version is tagged with why."""
    client = make_client(settings)
    name = settings.model_name
    if not reason.strip():
        raise ValueError("a rollback needs a reason (it is recorded on the model version)")
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        raise ValueError(f"model '{name}' has no champion to roll back") from None
    previous = current.tags.get("previous_champion", "")
    if not previous:
        raise ValueError(
            f"champion v{current.version} of '{name}' replaced no earlier champion; nothing to roll back to"
        )
    client.set_model_version_tag(name, str(current.version), "rolled_back", "true")
    client.set_model_version_tag(name, str(current.version), "rollback_reason", reason)
    # The restored version keeps its own previous_champion, so repeated rollbacks walk back in time.
    return _move_champion(client, name, previous, reason, "rollback", record_previous=False)


def version_tags(settings: Settings, version: str) -> dict[str, str]:
    """A registered version's tags; a version the registry does not have is refused."""
    try:
        return dict(make_client(settings).get_model_version(settings.model_name, version).tags)
    except MlflowException:
        raise ValueError(f"model '{settings.model_name}' has no version {version}") from None


def clear_alias(settings: Settings, alias: str) -> None:
    """Take an alias off whichever version has it (nothing happens where none has it)."""
    if alias_version(settings, alias) is not None:
        make_client(settings).delete_registered_model_alias(settings.model_name, alias)


def retire_champion(settings: Settings, reason: str) -> str | None:
    """Take the `champion` alias off its version (the reason is recorded there); the version stays.

    Returns the version that was champion, or None when there was none.
    """
    if not reason.strip():
        raise ValueError(
            "retiring the champion needs a reason (it is recorded on the model version)"
        )
    current = champion_version(settings)
    if current is None:
        return None
    client = make_client(settings)
    client.delete_registered_model_alias(settings.model_name, CHAMPION)
    client.set_model_version_tag(settings.model_name, current, "retired_reason", reason)
    client.set_model_version_tag(
        settings.model_name,
        current,
        "champion_until",
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return current


def registry_table(settings: Settings, versions: list[str] | None = None) -> pd.DataFrame:
    """The versions of the kit's model (all, or the ones named): aliases, gate, score, data version."""
    client = make_client(settings)
    try:
        found = client.search_model_versions(f"name = '{settings.model_name}'")
        versions = [v for v in found if versions is None or str(v.version) in map(str, versions)]
        aliases = client.get_registered_model(settings.model_name).aliases
    except MlflowException:
        versions, aliases = [], {}
    rows = [
        {
            "version": int(v.version),
            "aliases": ", ".join(sorted(a for a, n in aliases.items() if str(n) == str(v.version))),
            "gate": v.tags.get("gate", ""),
            f"eval_{settings.gate_metric}": v.tags.get(f"eval_{settings.gate_metric}", ""),
            "data_version": v.tags.get("data_version", ""),
            "candidate": v.tags.get("candidate", ""),
        }
        for v in versions
    ]
    columns = [
        "version",
        "aliases",
        "gate",
        f"eval_{settings.gate_metric}",
        "data_version",
        "candidate",
    ]
    return pd.DataFrame(rows, columns=columns).sort_values("version").reset_index(drop=True)
