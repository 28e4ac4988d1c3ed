"""Retraining: labelled production cases join the champion's data; a challenger has to beat the champion.

*"... e o processo retorna para a etapa de treinamento."* The new data version is the champion's
training data plus the labelled cases it has not seen (duplicates and cases already in the data are
skipped). A seeded share of those new cases is held out: it joins the evaluation data, so champion
and challenger are compared on the same data, which includes production cases neither learnt from.
The challenger becomes champion only through the same gate as any model (``register_and_gate``),
and the API, which follows the alias, serves it without a restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_kit import data, dataset, evaluation, registry, tracking, train
from mlops_kit.config import Settings
from mlops_kit.dataset import counts, make_card
from mlops_kit.labels import LABEL, labelled_cases
from mlops_kit.store import datasets
from mlops_kit.store.lock import holds_workspace_lock
from mlops_kit.training_run import tracked_run, train_and_gate

# where a row comes from (the original table or a labelled production case): see dataset.py
ORIGIN, SEASON, PRODUCTION = dataset.ORIGIN, dataset.SEASON, dataset.PRODUCTION


def load_data_version(settings: Settings, data_version: str) -> data.PreparedData:
    """A catalogued data version read back from the store (clean, train, eval and its card)."""
    return datasets.load_version(settings, data_version)


def record_keys(frame: pd.DataFrame, spec: data.DatasetSpec) -> pd.Series:
    """A record's identity by its inputs: the same measurements are the same case."""
    parts = []
    for col in spec.features:
        values = frame[col] if col in frame else pd.Series([np.nan] * len(frame), index=frame.index)
        if col in spec.numeric:
            values = pd.to_numeric(values, errors="coerce").round(6)
        parts.append(values.astype(object).where(values.notna(), "").astype(str))
    return pd.concat(parts, axis=1).agg("|".join, axis=1) if parts else pd.Series(dtype=str)


@dataclass
class NewData:
    """A training-data version made from a parent version and labelled production cases."""

    prepared: data.PreparedData
    parent: str
    review_sets: list[str]
    added_train: int
    added_eval: int
    skipped: int

    def lineage(self) -> dict[str, object]:
        """Where this data version comes from."""
        return {
            "data_version": self.prepared.card.data_version,
            "parent_data_version": self.parent,
            "review_sets": self.review_sets,
            "production_cases_train": self.added_train,
            "production_cases_eval": self.added_eval,
            "cases_skipped_as_duplicates": self.skipped,
        }


def _origin(frame: pd.DataFrame) -> pd.DataFrame:
    if ORIGIN in frame:
        return frame.assign(**{ORIGIN: frame[ORIGIN].fillna(SEASON)})
    return frame.assign(**{ORIGIN: SEASON})


def _split(
    cases: pd.DataFrame, target: str, holdout: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if holdout <= 0:
        return cases, cases.iloc[0:0]
    if len(cases) < 2:
        raise ValueError(
            f"only {len(cases)} new labelled case: at least 2 are needed, one to learn from and "
            "one held out to evaluate on"
        )
    n_eval = min(len(cases) - 1, max(1, round(holdout * len(cases))))
    labels = cases[target]
    try:  # keep the classes' proportions when there are enough cases of each
        return train_test_split(cases, test_size=n_eval, random_state=seed, stratify=labels)
    except ValueError:
        return train_test_split(cases, test_size=n_eval, random_state=seed)


def build_training_data(
    base: data.PreparedData,
    cases: pd.DataFrame,
    *,
    holdout: float,
    seed: int,
    review_sets: list[str] | None = None,
) -> NewData:
    """Parent data + new labelled cases (deduplicated), a seeded share of them held out for evaluation."""
    spec = base.spec
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be at least 0 and below 1, not {holdout}")
    missing = [c for c in [*spec.features, LABEL] if c not in cases.columns]
    if missing:
        raise ValueError(f"the labelled cases lack column(s): {', '.join(missing)}")
    rows = cases[spec.features].copy()
    for col in spec.numeric:
        rows[col] = pd.to_numeric(rows[col], errors="coerce").astype("float64")
    for col in spec.categorical:
        rows[col] = rows[col].astype(object).where(rows[col].notna(), np.nan)
    rows[spec.target] = cases[LABEL].astype(str).to_numpy()
    parent = _origin(base.clean)
    known = set(record_keys(parent, spec))
    keys = record_keys(rows, spec)
    fresh = rows[~keys.isin(known) & ~keys.duplicated()].assign(**{ORIGIN: PRODUCTION})
    skipped = len(rows) - len(fresh)
    if fresh.empty:
        raise ValueError(
            f"none of the {len(rows)} labelled case(s) is new: each is already in data version "
            f"{base.card.data_version} (or repeats another case); capture and label new ones"
        )
    new_train, new_eval = _split(fresh.reset_index(drop=True), spec.target, holdout, seed)
    train_df = pd.concat([_origin(base.train), new_train], ignore_index=True)
    eval_df = pd.concat([_origin(base.eval), new_eval], ignore_index=True)
    clean_df = pd.concat([parent, new_train, new_eval], ignore_index=True)
    sets = list(review_sets or [])
    split_info = {
        **{k: v for k, v in base.card.split.items() if not k.endswith(("_rows", "_balance"))},
        "train_rows": len(train_df),
        "eval_rows": len(eval_df),
        "train_class_balance": counts(train_df[spec.target]),
        "eval_class_balance": counts(eval_df[spec.target]),
        "production_train_rows": int((train_df[ORIGIN] == PRODUCTION).sum()),
        "production_eval_rows": int((eval_df[ORIGIN] == PRODUCTION).sum()),
        "parent_data_version": base.card.data_version,
        "review_sets": sets,
    }
    card = make_card(
        clean_df,
        spec,
        data_version=data.data_version(clean_df, spec),
        source=f"data version {base.card.data_version} + {len(fresh)} labelled production case(s)",
        source_sha256=hashlib.sha256(fresh.to_csv(index=False).encode()).hexdigest(),
        rows_raw=base.card.rows_raw + len(rows),
        rows_dropped={**base.card.rows_dropped, **({"duplicate_case": skipped} if skipped else {})},
        split=split_info,
        excluded_columns=base.card.excluded_columns,
        read_as=base.card.read_as,
        file_headers=base.card.file_headers,
        other_columns=base.card.other_columns,
        record_key=base.card.record_key,
    )
    prepared = data.PreparedData(clean_df, train_df, eval_df, spec, card)
    return NewData(prepared, base.card.data_version, sets, len(new_train), len(new_eval), skipped)


def write_training_data(new: NewData, settings: Settings) -> Path:
    """Catalogue the new data version (files, card, catalogue entry) and its lineage; return the card."""
    return datasets.write_version(new.prepared, settings, lineage=new.lineage())


def evaluate_model(
    model_uri: str, prepared: data.PreparedData, low_confidence: float
) -> dict[str, float]:
    """Scores of a logged model on the whole evaluation data, its season part and its production part."""
    model = mlflow.pyfunc.load_model(model_uri)
    origin = _origin(prepared.eval)[ORIGIN]
    parts = {"eval": origin.notna(), SEASON: origin == SEASON, PRODUCTION: origin == PRODUCTION}
    scores = {}
    for part, rows in parts.items():  # an empty part (no production cases) scores NaN
        part_scores = evaluation.evaluate(
            model, prepared.X_eval[rows], prepared.y_eval[rows], low_confidence
        )
        scores.update({f"{part}_{k}": v for k, v in part_scores.items()})
    scores["production_cases"] = float(parts[PRODUCTION].sum())
    return scores


COMPARISON_COLUMNS = [
    "model",
    "eval_f1_macro",
    "season_f1_macro",
    "production_accuracy",
    "production_mean_confidence",
]


@dataclass
class RetrainResult:
    """What one retraining did: the new data, the candidates, the comparison and the gate's decision."""

    new_data: NewData
    candidates: list[train.CandidateResult]
    best: train.CandidateResult
    champion_before: str
    champion_scores: dict[str, float]
    challenger_scores: dict[str, float]
    decision: registry.GateDecision
    run_id: str

    def comparison(self) -> pd.DataFrame:
        """Champion and challenger on the same evaluation data: all of it, the season, production."""
        rows = [
            {"model": f"champion v{self.champion_before}", **self.champion_scores},
            {
                "model": f"challenger v{self.decision.version} ({self.best.name})",
                **self.challenger_scores,
            },
        ]
        return pd.DataFrame(rows)[COMPARISON_COLUMNS].round(3)

    def summary(self) -> pd.DataFrame:
        """A two-column table of what happened."""
        new, d = self.new_data, self.decision
        rows = [
            ("new data version", new.prepared.card.data_version),
            ("built on data version", new.parent),
            ("labelled cases added (train / held out)", f"{new.added_train} / {new.added_eval}"),
            ("cases skipped (already in the data)", str(new.skipped)),
            ("evaluation rows (season + production)", f"{len(new.prepared.eval)}"),
            ("challenger", f"{self.best.name} -> {d.model_name} v{d.version}"),
            *d.outcome_rows(),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])


@holds_workspace_lock("retrain")
def retrain(
    settings: Settings,
    *,
    review_sets: list[str] | None = None,
    holdout: float | None = None,
    candidates: list[str] | None = None,
    quality_gate: float | None = None,
    gate_metric: str | None = None,
    shadow_first: bool = False,
) -> RetrainResult:
    """Train a challenger on the champion's data + labelled cases; promote it only if it is better.

    ``shadow_first``: a better challenger gets the `challenger` alias, not `champion`: it scores
    live traffic in shadow first, and ``compare.promote_challenger`` promotes it.
    """
    threshold, metric = registry.gate_rule(settings, quality_gate, gate_metric)
    train.check_candidates(candidates)
    share = settings.retrain_holdout if holdout is None else holdout
    champion, base = registry.champion_data(settings)
    cases = labelled_cases(settings, review_sets)
    if cases.empty:
        raise ValueError(
            "no labelled cases yet: capture low-confidence predictions and label them "
            "(mlops-kit capture, mlops-kit label)"
        )
    used = list(dict.fromkeys(cases["review_set"].astype(str)))
    new = build_training_data(base, cases, holdout=share, seed=settings.seed, review_sets=used)
    write_training_data(new, settings)
    prepared, low = new.prepared, settings.low_confidence
    lineage = {
        "data_version": prepared.card.data_version,
        "parent_data_version": new.parent,
        "review_sets": ",".join(used)[:5000],
        "previous_champion": champion,
    }
    tracking.configure(settings)
    # The champion first: if it cannot be scored on its own data + the new cases, nothing is trained.
    champion_scores = evaluate_model(f"models:/{settings.model_name}/{champion}", prepared, low)
    params = {
        "holdout": share,
        "quality_gate": threshold,
        "gate_metric": metric,
        "seed": settings.seed,
        "labelled_cases": len(cases),
    }
    with tracked_run(settings, "retraining", {"pipeline": "retraining", **lineage}, params) as run:
        mlflow.log_dict(new.lineage(), "data/lineage.json")
        gated = train_and_gate(
            settings,
            prepared,
            candidates=candidates,
            threshold=threshold,
            metric=metric,
            candidate_tags=lineage,
            version_tags={"pipeline": "retraining", **lineage},
            shadow_first=shadow_first,
        )
        challenger_scores = evaluate_model(gated.best.model_uri or "", prepared, low)
        mlflow.log_metrics(
            {
                **{f"champion_{k}": v for k, v in champion_scores.items() if np.isfinite(v)},
                **{f"challenger_{k}": v for k, v in challenger_scores.items() if np.isfinite(v)},
            }
        )
        result = RetrainResult(
            new,
            gated.candidates,
            gated.best,
            champion,
            champion_scores,
            challenger_scores,
            gated.decision,
            run.info.run_id,
        )
        mlflow.log_table(result.comparison(), "comparison.json")
    return result
