"""Model selection at scale: search each candidate's hyper-parameters with Optuna, then gate the best.

One search is one MLflow run, "tune". Each candidate's search is an Optuna study that MLflow's own
``MlflowStorage`` keeps in the experiment: a child run per candidate ("search-<candidate>") and
under it one run per trial, with the trial's hyper-parameters and its cross-validated macro F1.
The objective sees the training split only (stratified k-fold inside it): the held-out season is
not touched until each candidate, built with its best hyper-parameters, goes through the same
training run as `train` (``training_run.train_and_gate``: held-out scores, gate, registry, alias).

Engine "local" runs a plain Optuna study trial after trial in this process: the same seed finds
the same parameters. Engine "spark" runs the trials as Spark tasks with ``MlflowSparkStudy``, on
``local[2]`` or a standalone cluster, as many at once as the cluster has cores; parallel trials
reseed their sampler (MLflow does so that they do not all try the same values), so a Spark search
is not repeatable trial for trial. Each task receives the training rows with the objective: fine
for the tables the kit trains on, not a way to ship gigabytes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass
from functools import cached_property

import mlflow
import optuna
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.optuna.storage import MlflowStorage
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from sklearn.model_selection import StratifiedKFold, cross_val_score

from mlops_kit import data, registry, tracking, train
from mlops_kit.config import Settings, TableSpec
from mlops_kit.dataset import DatasetSpec, PreparedData
from mlops_kit.store.lock import holds_workspace_lock
from mlops_kit.training_run import Gated, table_params, tracked_run, train_and_gate

ENGINES = ("local", "spark")
CV_FOLDS = 3  # stratified folds of the training split each trial is scored on
CV_METRIC = "cv_f1_macro"


# --- the search space of each candidate: a few hyper-parameters, readable ---------------------
# `rows` is the size of the smallest training fold (KNN cannot ask for more neighbours).


def logistic_regression(trial: optuna.Trial, rows: int) -> dict[str, object]:
    """Regularisation strength, on a log scale."""
    return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}


def random_forest(trial: optuna.Trial, rows: int) -> dict[str, object]:
    """How many trees, how deep, how many rows a leaf needs."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 250, step=50),
        "max_depth": trial.suggest_int("max_depth", 2, 12),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 10),
    }


def knn(trial: optuna.Trial, rows: int) -> dict[str, object]:
    """How many neighbours vote, and whether the nearer ones weigh more."""
    return {
        "n_neighbors": trial.suggest_int("n_neighbors", 1, max(1, min(30, rows))),
        "weights": trial.suggest_categorical("weights", ["uniform", "distance"]),
    }


SEARCH_SPACES = {
    "logistic_regression": logistic_regression,
    "random_forest": random_forest,
    "knn": knn,
}


def rows_digest(X: pd.DataFrame, y: pd.Series) -> str:  # noqa: N803 - the field's usual name
    """A short fingerprint of exactly these rows (index, features and label)."""
    hashed = pd.util.hash_pandas_object(X.assign(**{"__label__": y}), index=True)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


@dataclass
class Objective:
    """Macro F1 of one candidate by stratified k-fold CV on the training rows (a Spark task runs it too)."""

    candidate: str
    spec: DatasetSpec
    X: pd.DataFrame
    y: pd.Series
    seed: int
    folds: int

    @cached_property
    def digest(self) -> str:
        """Which rows the objective learns from (each trial run records it): rows_digest(X, y)."""
        return rows_digest(self.X, self.y)

    def __call__(self, trial: optuna.Trial) -> float:
        """Build the candidate with the trial's hyper-parameters and cross-validate it."""
        smallest_fold = len(self.X) - -(-len(self.X) // self.folds)
        params = SEARCH_SPACES[self.candidate](trial, smallest_fold)
        pipeline = train.build_pipeline(self.candidate, self.spec, self.seed, params)
        cv = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
        score = float(cross_val_score(pipeline, self.X, self.y, cv=cv, scoring="f1_macro").mean())
        # MlflowStorage keeps each trial as an MLflow run: the trial's id is that run's id.
        MlflowClient().log_batch(
            trial._trial_id,
            metrics=[Metric(CV_METRIC, score, int(time.time() * 1000), 0)],
            tags=[
                RunTag(MLFLOW_RUN_NAME, f"{self.candidate}-trial-{trial.number}"),
                RunTag("kind", "trial"),
                RunTag("candidate", self.candidate),
                RunTag("search_rows", str(len(self.X))),
                RunTag("search_digest", self.digest),
            ],
        )
        return score


@dataclass
class Search:
    """One candidate's search: its best hyper-parameters and their cross-validated score."""

    candidate: str
    run_id: str  # the study's run; its trials are its child runs
    best_params: dict[str, object]
    best_score: float
    trials: int
    note: str = ""


def search_rows(
    prepared: PreparedData, candidate: str, seed: int
) -> tuple[pd.DataFrame, pd.Series, str]:
    """The rows a candidate's search learns from: the training split (KNN: a seeded sample above its limit)."""
    X, y = prepared.X_train, prepared.y_train
    if candidate == "knn" and len(X) > train.KNN_MAX_ROWS:
        X = X.sample(train.KNN_MAX_ROWS, random_state=seed)
        return X, y.loc[X.index], f"knn searched on a seeded sample of {len(X):,} rows"
    return X, y, ""


def folds_for(y: pd.Series, folds: int = CV_FOLDS) -> int:
    """As many stratified folds as asked, fewer where a class has fewer training rows; at least 2."""
    smallest = int(y.value_counts().min())
    if smallest < 2:
        rare = y.value_counts().idxmin()
        raise ValueError(
            f"class '{rare}' has {smallest} training row: cross-validation needs at least 2 per "
            "class; add rows of it or leave it out of the table"
        )
    return min(folds, smallest)


def search(
    candidate: str,
    prepared: PreparedData,
    settings: Settings,
    *,
    trials: int,
    parent_run_id: str,
    experiment_id: str,
    engine: str = "local",
    parallel: int = 1,
) -> Search:
    """Search one candidate's hyper-parameters: an Optuna study kept in MLflow under the parent run."""
    X, y, note = search_rows(prepared, candidate, settings.seed)
    objective = Objective(candidate, prepared.spec, X, y, settings.seed, folds_for(y))
    storage = MlflowStorage(experiment_id=experiment_id)
    # unique while it runs (MLflow resumes a study of the same name); renamed once it is done
    name = f"search-{candidate}-{parent_run_id}"
    sampler = optuna.samplers.TPESampler(seed=settings.seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if engine == "spark":
        from mlflow.pyspark.optuna.study import MlflowSparkStudy

        logging.getLogger("mlflow.pyspark.optuna").setLevel(logging.WARNING)  # a line per trial
        study = MlflowSparkStudy(name, storage, sampler=sampler, direction="maximize")
        optimize = functools.partial(study.optimize, n_jobs=min(trials, parallel))
    else:
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, direction="maximize"
        )
        optimize = functools.partial(study.optimize, n_jobs=1)
    run_id = storage.get_study_id_from_name(name)
    client = MlflowClient()
    try:
        optimize(objective, n_trials=trials)
    except BaseException:
        storage.flush_all_batches()
        client.set_terminated(run_id, "FAILED")  # not left RUNNING under a failed tune run
        raise
    best = study.best_trial
    client.log_batch(
        run_id,
        metrics=[Metric(f"best_{CV_METRIC}", float(best.value), int(time.time() * 1000), 0)],
        params=[Param(k, str(v)) for k, v in best.params.items()],
        tags=[
            RunTag(MLFLOW_PARENT_RUN_ID, parent_run_id),
            RunTag(MLFLOW_RUN_NAME, f"search-{candidate}"),
            RunTag("kind", "search"),
            RunTag("candidate", candidate),
            RunTag("engine", engine),
            RunTag("parallel_trials", str(min(trials, parallel))),
            *([RunTag("note", note)] if note else []),
        ],
    )
    client.set_terminated(run_id)
    return Search(candidate, run_id, dict(best.params), float(best.value), trials, note)


def _spark_parallelism(master: str | None) -> int:
    """Start (or reuse) the Spark session the trials run on; how many tasks it runs at once.

    Raises spark_session.SparkError naming the fix: no pyspark, no Java, a master that does not answer.
    """
    from mlops_kit.spark_session import session

    return int(session(master).sparkContext.defaultParallelism)


@dataclass
class TuneResult:
    """What a search produced: each candidate's best hyper-parameters and the gated training run."""

    prepared: PreparedData
    searches: list[Search]
    gated: Gated
    run_id: str
    experiment_id: str
    engine: str
    seconds: float = 0.0

    def best_params_table(self) -> pd.DataFrame:
        """Each candidate's best hyper-parameters, cross-validated score and held-out score."""
        held_out = {c.name: c.metrics for c in self.gated.candidates}
        rows = [
            {
                "candidate": s.candidate,
                "trials": s.trials,
                CV_METRIC: round(s.best_score, 4),
                "eval_f1_macro": round(held_out[s.candidate]["f1_macro"], 4),
                "best_params": ", ".join(f"{k}={_short(v)}" for k, v in s.best_params.items()),
            }
            for s in self.searches
        ]
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """A two-column table of what happened, for a notebook or the CLI."""
        d = self.gated.decision
        rows = [
            ("data version", self.prepared.card.data_version),
            ("engine", self.engine),
            ("best candidate", self.gated.best.name),
            (f"best {d.metric}", f"{d.score:.4f}"),
            ("registered", f"{d.model_name} v{d.version}"),
            ("quality gate", f"{d.threshold:.2f}"),
            *d.outcome_rows(),
            ("tune run", self.run_id),
        ]
        return pd.DataFrame(rows, columns=["item", "value"])


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _number(text: str) -> object:
    """A parameter as MLflow keeps it (text): a float where it reads as one with a decimal point."""
    try:
        return float(text) if "." in text else text
    except ValueError:
        return text


def check_request(trials: int, engine: str) -> None:
    """Refuse a search that cannot run, before anything is tracked."""
    if trials < 1:
        raise ValueError(f"--trials must be at least 1, not {trials}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not '{engine}'")


@holds_workspace_lock("tuning")
def run_tuning(
    settings: Settings,
    table: TableSpec | None = None,
    *,
    trials: int,
    candidates: list[str] | None = None,
    engine: str = "local",
    master: str | None = None,
    quality_gate: float | None = None,
    gate_metric: str | None = None,
) -> TuneResult:
    """Search each candidate's hyper-parameters on the training split, then train, register and gate the best."""
    started = time.perf_counter()
    check_request(trials, engine)
    threshold, metric = registry.gate_rule(settings, quality_gate, gate_metric)
    train.check_candidates(candidates)
    parallel = _spark_parallelism(master) if engine == "spark" else 1
    prepared = data.prepare(settings.table if table is None else table, settings)
    folds_for(prepared.y_train)  # a class too rare to cross-validate: refused before any run
    names = candidates or list(train.CANDIDATES)
    tags = {"pipeline": "tuning", "data_version": prepared.card.data_version}
    params = {
        **table_params(prepared),
        "trials": trials,
        "engine": engine,
        "spark_master": master or "",
        "cv_folds": CV_FOLDS,
        "quality_gate": threshold,
        "gate_metric": metric,
        "seed": settings.seed,
    }
    with tracked_run(settings, "tune", tags, params) as run:
        searches = [
            search(
                name,
                prepared,
                settings,
                trials=trials,
                parent_run_id=run.info.run_id,
                experiment_id=run.info.experiment_id,
                engine=engine,
                parallel=parallel,
            )
            for name in names
        ]
        gated = train_and_gate(
            settings,
            prepared,
            candidates=names,
            threshold=threshold,
            metric=metric,
            params={s.candidate: s.best_params for s in searches},
            candidate_tags={"tuned": "true"},
        )
    return TuneResult(
        prepared,
        searches,
        gated,
        run.info.run_id,
        run.info.experiment_id,
        engine,
        time.perf_counter() - started,
    )


def runs_table(settings: Settings, tune_run_id: str) -> pd.DataFrame:
    """The tune run and every run under it (searches, their trials, the trained candidates)."""
    client = tracking.client(settings)
    parent = client.get_run(tune_run_id)
    experiment = [parent.info.experiment_id]
    rows = [_run_row(parent, "tune", "")]

    def children(run_id: str) -> list:
        found = client.search_runs(experiment, f"tags.mlflow.parentRunId = '{run_id}'")
        return sorted(found, key=lambda r: r.info.start_time)

    for child in children(tune_run_id):
        kind = child.data.tags.get("kind", "candidate")
        rows.append(_run_row(child, kind, parent.info.run_name or ""))
        if kind == "search":
            rows += [
                _run_row(t, "trial", child.info.run_name or "") for t in children(child.info.run_id)
            ]
    return pd.DataFrame(rows)


def _run_row(run: mlflow.entities.Run, kind: str, parent: str) -> dict[str, object]:
    metrics = run.data.metrics
    score = metrics.get(CV_METRIC, metrics.get(f"best_{CV_METRIC}", float("nan")))
    held_out = metrics.get("eval_f1_macro", metrics.get("best_eval_f1_macro", float("nan")))
    params = {k: v for k, v in run.data.params.items() if kind in ("trial", "search")}
    return {
        "run": run.info.run_name,
        "kind": kind,
        "parent": parent,
        "status": run.info.status,
        CV_METRIC: round(score, 4),
        "eval_f1_macro": round(held_out, 4),
        "params": ", ".join(f"{k}={_short(_number(v))}" for k, v in sorted(params.items())),
    }
