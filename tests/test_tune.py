"""`mlops-kit tune`: Optuna searches on the training split, kept in MLflow, the best gated as `train` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from typer.testing import CliRunner

from mlops_kit import registry, tracking
from mlops_kit.cli import EXIT_BAD_INPUT, EXIT_GATE_REFUSED, app
from mlops_kit.config import Settings, get_settings
from mlops_kit.tune import CV_METRIC, TuneResult, rows_digest, run_tuning, runs_table
from tests.helpers import clear_env, reset_mlflow, run_cli

pytestmark = pytest.mark.slow  # each test trains and searches

TRIALS = 3


def _tune(settings: Settings, **options: object) -> TuneResult:
    try:
        return run_tuning(settings, trials=TRIALS, **options)
    finally:
        reset_mlflow()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, TuneResult]:
    """One 3-trial local search of every candidate on the shipped penguins, in its own store."""
    root = tmp_path_factory.mktemp("tuned")
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        settings = Settings(workspace=root / "workspace", runs_dir=root / "runs")
        return settings, _tune(settings)


def _children(settings: Settings, run_id: str) -> list:
    client = tracking.client(settings)
    experiment = client.get_run(run_id).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{run_id}'")


def test_each_candidate_is_a_search_run_with_one_child_run_per_trial(tuned):
    settings, result = tuned
    children = _children(settings, result.run_id)
    searches = {
        r.data.tags["candidate"]: r for r in children if r.data.tags.get("kind") == "search"
    }
    assert set(searches) == {"logistic_regression", "random_forest", "knn"}
    for candidate, search in searches.items():
        trials = _children(settings, search.info.run_id)
        assert len(trials) == TRIALS
        assert {t.info.run_name for t in trials} == {f"{candidate}-trial-{n}" for n in range(3)}
        assert all(t.info.status == "FINISHED" and CV_METRIC in t.data.metrics for t in trials)
        assert all(t.data.params for t in trials)  # the hyper-parameters each trial tried
        best = max(t.data.metrics[CV_METRIC] for t in trials)
        assert search.data.metrics[f"best_{CV_METRIC}"] == pytest.approx(best)
    # the trained candidates sit beside the searches under the same tune run
    trained = {r.info.run_name for r in children if r.data.tags.get("tuned") == "true"}
    assert trained == set(searches)
    table = runs_table(settings, result.run_id)
    assert (table["kind"] == "trial").sum() == 3 * TRIALS
    assert table.iloc[0]["run"] == "tune"


def test_the_objective_never_sees_the_held_out_season(tuned):
    settings, result = tuned
    prepared = result.prepared
    seen = {
        (t.data.tags["search_rows"], t.data.tags["search_digest"])
        for s in _children(settings, result.run_id)
        if s.data.tags.get("kind") == "search"
        for t in _children(settings, s.info.run_id)
    }
    assert seen == {(str(len(prepared.train)), rows_digest(prepared.X_train, prepared.y_train))}
    assert prepared.card.split["eval_seasons"] == ["2009"]  # the season the search never saw
    assert rows_digest(prepared.X_eval, prepared.y_eval) not in {digest for _, digest in seen}


def test_the_best_params_go_through_the_gate_and_the_registry(tuned):
    settings, result = tuned
    decision = result.gated.decision
    assert decision.promoted
    assert registry.champion_version(settings) == decision.version
    version = tracking.client(settings).get_model_version(settings.model_name, decision.version)
    assert version.tags["candidate"] == result.gated.best.name
    best = next(s for s in result.searches if s.candidate == result.gated.best.name)
    logged = tracking.client(settings).get_run(result.gated.best.run_id).data.params
    assert {k: logged[k] for k in best.best_params} == {
        k: str(v) for k, v in best.best_params.items()
    }


def test_the_same_seed_finds_the_same_best_params(tuned, settings):
    _, first = tuned
    again = _tune(settings, candidates=["logistic_regression", "knn"])
    other = _tune(get_settings(seed=7, workspace=settings.workspace / "seed7"), candidates=["knn"])
    before = {s.candidate: s.best_params for s in first.searches}
    assert {s.candidate: s.best_params for s in again.searches} == {
        c: before[c] for c in ("logistic_regression", "knn")
    }
    assert other.searches[0].best_params != before["knn"]


def _cancer_csv(folder: Path) -> Path:
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, -1]]
    path = folder / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_table_the_kit_did_not_ship_is_searched_and_refused_by_a_strict_gate(settings, tmp_path):
    done = CliRunner().invoke(
        app,
        [
            "tune",
            "--trials",
            "3",
            "--candidates",
            "logistic_regression,knn",
            "--data",
            str(_cancer_csv(tmp_path)),
            "--target",
            "target",
            "--gate",
            "1.0",
            "--fail-on-refusal",
        ],
    )
    reset_mlflow()
    assert done.exit_code == EXIT_GATE_REFUSED, done.output
    assert "n_neighbors=" in done.stdout and "C=" in done.stdout
    assert "is below the quality gate" in done.stdout
    tune_run = done.stdout.split("tune run")[-1].strip()
    searches = [r for r in _children(settings, tune_run) if r.data.tags.get("kind") == "search"]
    assert len(searches) == 2
    assert all(len(_children(settings, s.info.run_id)) == 3 for s in searches)
    # registered as a new version, but not the champion: the gate refused it
    assert registry.champion_version(settings) is None
    assert [v.version for v in tracking.client(settings).search_model_versions()] == [1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be at least 1, not 0"),
        (["--trials", "2", "--candidates", "svm"], "unknown candidate(s): svm"),
        (["--trials", "2", "--engine", "ray"], "engine must be one of local, spark"),
        (["--trials", "2", "--master", "spark://127.0.0.1:7"], "--master needs --engine spark"),
        (
            ["--trials", "2", "--engine", "spark", "--master", "spark://127.0.0.1:7"],
            "does not answer",
        ),
    ],
)
def test_a_search_that_cannot_run_exits_2_and_tracks_nothing(settings, args, message):
    done = CliRunner().invoke(app, ["tune", *args])
    assert done.exit_code == EXIT_BAD_INPUT, done.output
    assert message in done.stderr
    assert not settings.mlflow_db.exists()


def test_the_search_runs_as_spark_tasks_on_local_2(settings):
    pytest.importorskip("pyspark")
    result = _tune(settings, candidates=["logistic_regression"], engine="spark")
    search = result.searches[0]
    trials = _children(settings, search.run_id)
    assert len(trials) == TRIALS
    assert tracking.client(settings).get_run(search.run_id).data.tags["engine"] == "spark"
    prepared = result.prepared
    assert {t.data.tags["search_digest"] for t in trials} == {
        rows_digest(prepared.X_train, prepared.y_train)
    }
    assert search.best_score == max(t.data.metrics[CV_METRIC] for t in trials)
    assert result.gated.decision.promoted
    assert registry.champion_version(settings) == result.gated.decision.version
    from pyspark.sql import SparkSession

    SparkSession.getActiveSession().stop()  # the JVM's memory back for the next tests


def test_the_cli_searches_on_a_standalone_cluster_of_two_workers(settings, tmp_path):
    pytest.importorskip("pyspark")
    from mlops_kit import spark_cluster
    from mlops_kit.processes import free_port

    root = tmp_path / "spark"
    started, _ = spark_cluster.up(root, free_port(), free_port(), workers=2)
    try:
        done = run_cli(
            "tune", "--trials", "2", "--candidates", "logistic_regression",
            "--engine", "spark", "--master", started.master_url,
        )  # fmt: skip
    finally:
        spark_cluster.down(root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "engine spark" in " ".join(done.stdout.split())
    tune_run = done.stdout.split("tune run")[-1].strip()
    client = tracking.client(settings)
    (search,) = [r for r in _children(settings, tune_run) if r.data.tags.get("kind") == "search"]
    assert search.data.tags["engine"] == "spark"
    assert search.data.tags["parallel_trials"] == "2"  # two tasks, one per worker core
    trials = _children(settings, search.info.run_id)
    assert len(trials) == 2 and all(CV_METRIC in t.data.metrics for t in trials)
    assert client.get_run(tune_run).data.params["spark_master"] == started.master_url
