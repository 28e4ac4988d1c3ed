"""The closed loop, step by step, for notebook 04: where the story starts, and the before/after table."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_kit import registry, tracking
from mlops_kit.config import Settings
from mlops_kit.data import prepare
from mlops_kit.monitoring.monitor import monitor
from mlops_kit.monitoring.report import MonitorReport
from mlops_kit.retrain import RetrainResult
from mlops_kit.services import Service
from mlops_kit.simulator.traffic import TrafficRun, held_out_season

RESTART_REASON = "notebook 04 starts the loop from the model trained on the field seasons only"


@dataclass(frozen=True)
class StartingPoint:
    """The champion the loop starts from, the data it learnt from, and how it got there."""

    version: str
    data_version: str
    how: str

    def __str__(self) -> str:
        return f"champion v{self.version}, trained on data version {self.data_version}: {self.how}"


def starting_champion(
    settings: Settings, candidates: list[str] | None = None, quality_gate: float | None = None
) -> StartingPoint:
    """A champion trained on the field seasons only: the current one, an earlier one, or a new one.

    In a fresh workspace the training pipeline runs once. Where the loop already ran (the champion
    learnt from production cases), the alias goes back to the newest version trained on the field
    seasons only, with the reason recorded, so the demonstration can be shown again.
    """
    season_data = prepare(settings.table, settings, write=False).card.data_version
    registry.clear_alias(settings, registry.CHALLENGER)  # no challenger of an earlier run in shadow
    current = registry.champion_version(settings)
    if current is not None:
        client = tracking.client(settings)
        tags = client.get_model_version(settings.model_name, current).tags
        if tags.get("data_version") == season_data:
            return StartingPoint(current, season_data, "already the champion")
        earlier = [
            v
            for v in client.search_model_versions(f"name = '{settings.model_name}'")
            if v.tags.get("data_version") == season_data and v.tags.get("gate") == "passed"
        ]
        if earlier:
            chosen = str(max(int(v.version) for v in earlier))
            registry.promote(settings, chosen, RESTART_REASON)
            return StartingPoint(chosen, season_data, f"moved back from v{current}")
    from mlops_kit.training_pipeline import run_training_pipeline

    result = run_training_pipeline(settings, candidates=candidates, quality_gate=quality_gate)
    version = result.decision.version
    if not result.decision.promoted:
        if result.decision.score < result.decision.threshold:
            raise RuntimeError(f"the starting model failed the gate: {result.decision.reason}")
        registry.promote(settings, version, RESTART_REASON)
    return StartingPoint(version, season_data, "trained now")


def one_request(api: Service) -> str:
    """One POST /predict as any client sends it (the record of the API's /docs example), and the
    API's JSON answer."""
    body = api.get("/openapi.json")["paths"]["/predict"]["post"]["requestBody"]
    record = body["content"]["application/json"]["examples"]["one record"]["value"]
    sent = json.dumps(record, ensure_ascii=False)
    status, answer = api.post("/predict", record)
    curl = (
        f"$ curl -X POST {api.url}/predict -H 'Content-Type: application/json' \\\n    -d '{sent}'"
    )
    return f"{curl}\nHTTP {status}\n{json.dumps(answer, indent=2, ensure_ascii=False)}"


def serving_version(api: Service) -> str | None:
    """The model version a running API serves now (None when it has none loaded)."""
    return api.get("/health").get("model_version")


def shadow_version(api: Service) -> str | None:
    """The model version a running API scores in shadow now (None: no shadow, or none loaded)."""
    return (api.get("/health").get("shadow") or {}).get("model_version")


def _wait_for(
    api: Service, version: str, read: Callable[[Service], str | None], what: str, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not api.process.running():
            code = api.process.popen.returncode
            raise RuntimeError(f"the API exited with {code}:\n{api.log_tail()}")
        if read(api) == str(version):
            return str(version)
        time.sleep(0.05)
    raise TimeoutError(f"the API still {what} v{read(api)}, not v{version}, after {timeout:.0f} s")


def wait_until_serving(api: Service, version: str, timeout: float = 60.0) -> str:
    """Wait until the API, which follows the champion alias, serves this version; return it."""
    return _wait_for(api, version, serving_version, "serves", timeout)


def wait_until_shadowing(api: Service, version: str, timeout: float = 60.0) -> str:
    """Wait until the API's shadow (it follows its alias too) scores with this version."""
    return _wait_for(api, version, shadow_version, "scores in shadow", timeout)


def phase_report(settings: Settings, run: TrafficRun) -> MonitorReport:
    """Monitoring of exactly the predictions one simulator run caused."""
    from mlops_kit.store.predictions.window import read_predictions

    log = read_predictions(settings, since=run.started_at)
    mine = log[log["request_id"].isin(set(run.records["request_id"]))]
    return monitor(settings, mine, recent=len(mine), segment=len(mine) or 1)


def before_after(
    settings: Settings,
    normal: TrafficRun,
    before: TrafficRun,
    after: TrafficRun,
    result: RetrainResult | None = None,
) -> pd.DataFrame:
    """Normal traffic, shifted traffic before retraining and after it: the numbers side by side.

    Accuracy uses the simulator's kept-aside truth (a demo has it; production would not); the
    held-out production cases are the labelled cases neither model trained on.
    """
    columns = {"normal": normal, "shifted, before": before, "shifted, after": after}
    rows: dict[str, list[object]] = {
        "model version served": [],
        "mean confidence": [],
        "low-confidence share": [],
        "accuracy (simulator truth)": [],
        "drifted features": [],
        "accuracy on held-out production cases": [],
    }
    for run in columns.values():
        s = run.summary()
        report = phase_report(settings, run)
        rows["model version served"].append(f"v{s['model_version']}")
        rows["mean confidence"].append(f"{s['mean_confidence']:.3f}")
        rows["low-confidence share"].append(f"{s['low_confidence_share']:.0%}")
        rows["accuracy (simulator truth)"].append(f"{s['accuracy']:.0%}")
        rows["drifted features"].append(", ".join(report.drifted) or "-")
        held_out = "-"
        if result is not None and run is not normal:
            served = str(s["model_version"])
            scores = (
                result.challenger_scores
                if served == result.decision.version
                else result.champion_scores
            )
            held_out = f"{scores['production_accuracy']:.0%}"
        rows["accuracy on held-out production cases"].append(held_out)
    return pd.DataFrame(rows, index=list(columns)).T


def season_file(settings: Settings) -> Path:
    """The champion's held-out season as a CSV, as a nightly batch would receive it.

    Every held-out row, missing measurements included (batch scoring refuses those, with the
    reason), its features and its row of the raw table as the record's identifier.
    """
    season = held_out_season(settings)
    path = settings.workspace / "batch" / "season.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    season.to_csv(path, index=False)
    return path


def monitoring_lines(reports: dict[str, MonitorReport]) -> pd.DataFrame:
    """One line per traffic source (the API's, the batch's): what monitoring saw in each."""
    rows = {
        source: {
            "predictions": report.predictions,
            "model version(s) in the window": ", ".join(report.model_versions) or "-",
            "mean confidence": f"{report.mean_confidence:.3f}",
            "low-confidence share": f"{report.low_confidence_share:.0%}",
            "drifted features": ", ".join(report.drifted) or "-",
            "retraining due": "yes" if report.retrain_due else "no",
        }
        for source, report in reports.items()
    }
    return pd.DataFrame(rows).T
