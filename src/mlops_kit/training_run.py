"""One training run, the same at level 1 and in retraining: candidates -> the best -> the gate.

Inside one MLflow run: the data card and tables, every candidate as a nested run, the candidates
side by side, the best registered as a new version of the model, and the gate's decision
(champion or not, and why). The level-1 pipeline (``training_pipeline``) and retraining
(``retrain``) each open the run with their own name, tags and parameters, and add only what is
theirs: retraining also scores the champion and the challenger on the same data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow

from mlops_kit import candidate_log, plots, registry, tracking, train
from mlops_kit.config import Settings
from mlops_kit.dataset import PreparedData


@dataclass
class Gated:
    """What a training run decided: the candidates, the best of them, the gate's decision."""

    candidates: list[train.CandidateResult]
    best: train.CandidateResult
    decision: registry.GateDecision


def table_params(prepared: PreparedData) -> dict[str, object]:
    """The table a run learnt from, as its MLflow params: file, target, features, split."""
    return {
        "data_path": prepared.card.source,
        "target": prepared.spec.target,
        "features": ",".join(prepared.spec.features),
        "split": prepared.card.split["by"],
    }


@contextmanager
def tracked_run(
    settings: Settings, name: str, tags: dict[str, str], params: dict[str, object]
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run in the kit's experiment, tagged with what started it."""
    tracking.configure(settings)
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tags({**tags, **tracking.invocation_tags()})
        mlflow.log_params(params)
        yield run


def train_and_gate(
    settings: Settings,
    prepared: PreparedData,
    *,
    candidates: list[str] | None,
    threshold: float,
    metric: str,
    candidate_tags: dict[str, str] | None = None,
    version_tags: dict[str, str] | None = None,
    params: dict[str, dict[str, object]] | None = None,
    shadow_first: bool = False,
) -> Gated:
    """In the active run: log the data, train and log each candidate, register the best, gate it.

    `params`: hyper-parameters by candidate (what `tune` found), the kit's defaults where absent.
    """
    mlflow.log_dict(prepared.card.to_dict(), "data/data_card.json")
    tracking.log_data_inputs(prepared)  # the training and evaluation tables, by data version
    results = train.train_candidates(
        prepared, candidates, settings.seed, low_confidence=settings.low_confidence, params=params
    )
    for result in results:
        candidate_log.log_candidate(result, prepared, tags=candidate_tags)
    best = train.best_of(results, metric)
    table = train.candidates_table(results)
    mlflow.log_figure(plots.metric_bars(table, metric, threshold), "plots/candidates.png")
    mlflow.log_table(table, "candidates.json")
    mlflow.log_metrics({f"best_eval_{k}": v for k, v in best.metrics.items()})
    decision = registry.register_and_gate(
        best.model_uri or "",
        best.metrics[metric],
        prepared,
        settings,
        threshold=threshold,
        metric=metric,
        tags={"candidate": best.name, "run_id": best.run_id or "", **(version_tags or {})},
        shadow_first=shadow_first,
    )
    registry.log_decision(decision, best.name)
    return Gated(results, best, decision)
