"""Level 1: the whole training pipeline as one parameterised, tracked, gated call."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from mlops_kit import data, registry, tracking, train
from mlops_kit.config import Settings, TableSpec
from mlops_kit.store.lock import holds_workspace_lock
from mlops_kit.training_run import table_params, tracked_run, train_and_gate


@dataclass
class PipelineResult:
    """What one pipeline run produced: the data, the candidates, the chosen one and the gate's decision."""

    prepared: data.PreparedData
    candidates: list[train.CandidateResult]
    best: train.CandidateResult
    decision: registry.GateDecision
    run_id: str
    experiment_id: str
    seconds: float = 0.0  # wall time from raw data to a gated, registered model

    def candidates_table(self) -> pd.DataFrame:
        """The candidates side by side, best first."""
        return train.candidates_table(self.candidates)

    def summary(self) -> pd.DataFrame:
        """A two-column table of what happened, for a notebook or the CLI."""
        d = self.decision
        rows = [
            ("data version", self.prepared.card.data_version),
            (
                "training rows / evaluation rows",
                f"{len(self.prepared.train)} / {len(self.prepared.eval)}",
            ),
            ("best candidate", self.best.name),
            (f"best {d.metric}", f"{d.score:.4f}"),
            ("registered", f"{d.model_name} v{d.version}"),
            ("quality gate", f"{d.threshold:.2f}"),
            *d.outcome_rows(),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])


@holds_workspace_lock("training")
def run_training_pipeline(
    settings: Settings,
    table: TableSpec | None = None,
    *,
    candidates: list[str] | None = None,
    quality_gate: float | None = None,
    gate_metric: str | None = None,
) -> PipelineResult:
    """Prepare data, train and log every candidate, register the best, gate it; all in one MLflow run.

    `table` is the table to learn from (default: the one the settings name).
    """
    started = time.perf_counter()
    # Arguments checked up front, so a typo leaves no failed run behind in MLflow.
    threshold, metric = registry.gate_rule(settings, quality_gate, gate_metric)
    train.check_candidates(candidates)
    # Validate the data before anything is tracked: bad input trains and registers nothing.
    prepared = data.prepare(settings.table if table is None else table, settings)
    tags = {"pipeline": "training", "data_version": prepared.card.data_version}
    params = {
        **table_params(prepared),
        "quality_gate": threshold,
        "gate_metric": metric,
        "seed": settings.seed,
    }
    with tracked_run(settings, "training-pipeline", tags, params) as run:
        gated = train_and_gate(
            settings, prepared, candidates=candidates, threshold=threshold, metric=metric
        )
    return PipelineResult(
        prepared,
        gated.candidates,
        gated.best,
        gated.decision,
        run.info.run_id,
        run.info.experiment_id,
        time.perf_counter() - started,
    )


def card_table(card: data.DataCard) -> pd.DataFrame:
    """The data card as a short two-column table."""
    split = card.split
    rows = [
        ("data version", card.data_version),
        ("source", f"{card.source} (sha256 {card.source_sha256[:12]}…)"),
        ("rows", f"{card.rows_raw} raw → {card.rows_clean} clean"),
        ("dropped", ", ".join(f"{k}: {v}" for k, v in card.rows_dropped.items()) or "none"),
        ("target", f"{card.target} {card.class_balance}"),
        ("numeric features", ", ".join(card.numeric_features)),
        ("categorical features", ", ".join(card.categorical_features)),
        (
            "split",
            f"by {split['by']}: train {split.get('train_seasons', '')} / eval {split.get('eval_seasons', '')}",
        ),
        ("train / eval rows", f"{split['train_rows']} / {split['eval_rows']}"),
    ]
    if card.excluded_columns:  # a user's table: the columns the kit chose not to use, and why
        left_out = "; ".join(f"{c}: {why}" for c, why in card.excluded_columns.items())
        rows.append(("left out", left_out))
    if card.record_key:  # the identifier a row of the file carries: it comes back with answers
        rows.append(("record key", card.record_key))
    return pd.DataFrame(rows, columns=["item", "value"])


def runs_table(settings: Settings, parent_run_id: str) -> pd.DataFrame:
    """The pipeline's parent run and its nested candidate runs, as MLflow recorded them."""
    client = tracking.client(settings)
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    rows = []
    for run in [parent, *sorted(children, key=lambda r: r.info.run_name or "")]:
        metrics = run.data.metrics
        rows.append(
            {
                "run": run.info.run_name,
                "kind": "pipeline" if run is parent else "candidate",
                "status": run.info.status,
                "eval_f1_macro": round(
                    metrics.get("eval_f1_macro", metrics.get("best_eval_f1_macro", float("nan"))), 4
                ),
                "eval_accuracy": round(
                    metrics.get("eval_accuracy", metrics.get("best_eval_accuracy", float("nan"))), 4
                ),
                "data_version": run.data.tags.get("data_version", ""),
            }
        )
    return pd.DataFrame(rows)


class GateRefusedError(RuntimeError):
    """The quality gate refused the model (raised only when a job asks to fail on refusal)."""


def require_promotion(result: PipelineResult, fail_on_refusal: bool = True) -> str:
    """Say what the gate decided; with fail_on_refusal, a refused model raises GateRefusedError."""
    d = result.decision
    if d.promoted:
        return f"{d.model_name} v{d.version} is the new champion: {d.reason}"
    message = f"quality gate refused {d.model_name} v{d.version}: {d.reason}"
    if fail_on_refusal:
        raise GateRefusedError(message)
    return message
