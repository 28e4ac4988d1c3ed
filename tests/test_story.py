"""The notebooks' story and their numbers: every notebook runs once, then 02-04 run again in the
same workspace; each second run shows the decisions of its committed outputs, and the figures every
run computed (read from what it shows and from the MLflow runs it made) are the expected ones."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from mlops_kit.config import PROJ_ROOT, Settings
from tests.helpers import clear_env, run_cli
from tests.notebook_outputs import cells, number, printed, ran_between, tables_with, version

pytestmark = pytest.mark.slow  # runs every notebook, and 02-04 twice

# The figures the talk shows, copied from the committed notebooks' outputs (notebooks/*.ipynb in git).
# 02, section 3 ("Os candidatos", every measurement) and section 7 (the level-0 measurements):
# each candidate's f1 macro and accuracy on the held-out season (2009).
CANDIDATES_ALL_MEASUREMENTS = {
    "logistic_regression": {"f1_macro": 1.0, "accuracy": 1.0},
    "random_forest": {"f1_macro": 1.0, "accuracy": 1.0},
    "knn": {"f1_macro": 1.0, "accuracy": 1.0},
}
CANDIDATES_LEVEL0 = {
    "random_forest": {"f1_macro": 0.7846, "accuracy": 0.8151},
    "knn": {"f1_macro": 0.7844, "accuracy": 0.8235},
    "logistic_regression": {"f1_macro": 0.7603, "accuracy": 0.7983},
}
SHOWN_CANDIDATES = [CANDIDATES_ALL_MEASUREMENTS, CANDIDATES_LEVEL0]  # the two tables 02 shows
# 04, section 9 ("Antes e depois"), row "parte com baixa confiança": normal traffic, after the
# field change with the old champion, after the change with the retrained one.
LOW_CONFIDENCE_SHARE = {"normal": 0.02, "shift": 0.30, "after": 0.02}
# 04, section 7 (the comparison table): f1 macro on the validation rows both models are judged on.
RETRAINING_F1 = {"champion": 0.99, "challenger": 1.0}

METRIC_TOL = 0.001  # shown to 4 decimals; one case more or less right moves an f1 by more than this
SHARE_TOL = 0.006  # shown as a whole percent (±0.005); one case in 100 moves a share by 0.01

COMMITTED = sorted((PROJ_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STATEFUL = ["02", "03", "04"]  # the notebooks whose decisions depend on the registry and the store


@dataclass(frozen=True)
class Story:
    """A workspace where every notebook ran once (first pass), then 02-04 again (second pass)."""

    settings: Settings
    passes: list[Path]  # the runs folders, in the order they ran

    def executed(self, prefix: str) -> list[Path]:
        """The executed copies of one notebook, one per pass that ran it, in order."""
        return [p for folder in self.passes for p in sorted(folder.glob(f"{prefix}_*.ipynb"))]

    def client(self) -> MlflowClient:
        """A client on the workspace's tracking store and registry."""
        return MlflowClient(self.settings.tracking_uri, self.settings.registry_uri)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    """Run `mlops-kit pipeline` (every notebook), then `mlops-kit pipeline 02 03 04`, in one workspace."""
    root = tmp_path_factory.mktemp("story")
    env = {"MLOPS_KIT_WORKSPACE": str(root / "workspace"), "MLOPS_KIT_RUNS_DIR": str(root / "runs")}
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        settings = Settings(workspace=root / "workspace", runs_dir=root / "runs")
        for notebooks in ([], STATEFUL):
            result = run_cli("pipeline", *notebooks, **env)
            assert result.returncode == 0, result.stdout + result.stderr
    return Story(settings, sorted(p for p in settings.runs_dir.iterdir() if p.is_dir()))


# --- the story: decision lines ---

# Lines that carry a decision: promoted or not and why, the gate, the smoke test and rollback,
# the deliveries through staging,
# the monitor's verdict, what was captured and labelled.
DECISION = re.compile(
    r"promovido a champion|motivo|champion agora|é o novo champion|quality gate recusou|aprovado|"
    r"recusado|FALHOU|rollback|a API agora serve|retreino|casos captados|casos rotulados|verde|"
    r"entrega de|falhou em staging|agora serve"
)


def decisions(notebook: Path) -> list[str]:
    """The decision lines a notebook's outputs show, numbers masked (versions count up on reruns)."""
    lines = []
    for cell in cells(notebook):
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(
                output.get("data", {}).get("text/plain", "")
            )
            for line in text.splitlines():
                if DECISION.search(line):
                    lines.append(" ".join(re.sub(r"\d+", "N", line).split()))
    return lines


def test_a_second_run_of_every_notebook_tells_the_committed_story(story: Story) -> None:
    second = story.passes[-1]
    for committed in COMMITTED:
        if committed.name[:2] in STATEFUL:
            assert decisions(committed), f"{committed.name} shows no decision to compare"
            assert decisions(second / committed.name) == decisions(committed), committed.name


# --- reading the figures: from what a notebook shows, from the MLflow runs it made ---


def flat(tables: list[dict[str, dict[str, float]]]) -> dict[tuple[int, str, str], float]:
    """Scores per candidate, one dict per table, as one flat mapping (pytest.approx is not nested)."""
    return {
        (i, candidate, metric): value
        for i, table in enumerate(tables)
        for candidate, scores in table.items()
        for metric, value in scores.items()
    }


def shown_candidates(notebook: Path) -> list[dict[str, dict[str, float]]]:
    """Each candidates table the notebook shows: f1 macro and accuracy per candidate."""
    return [
        {
            row["candidato"]: {
                "f1_macro": number(row["f1_macro"]),
                "accuracy": number(row["acurácia"]),
            }
            for _, row in table.iterrows()
        }
        for table in tables_with(notebook, "candidato", "f1_macro", "acurácia")
    ]


def shown_low_confidence(notebook: Path) -> dict[str, float]:
    """The before/after table's low-confidence share per phase (normal, shift, after)."""
    (table,) = tables_with(notebook, "versão do modelo servida", "parte com baixa confiança")
    shares = table.loc["parte com baixa confiança"]
    return dict(zip(LOW_CONFIDENCE_SHARE, map(number, shares), strict=True))


def shown_retraining_f1(notebook: Path) -> dict[str, float]:
    """The comparison table's f1 macro on the shared validation rows: champion, then challenger."""
    (table,) = tables_with(notebook, "modelo", "f1_macro (validação)")
    return dict(zip(RETRAINING_F1, map(number, table["f1_macro (validação)"]), strict=True))


def started(run: Run) -> datetime:
    """When an MLflow run started (timezone-aware)."""
    return datetime.fromtimestamp(run.info.start_time / 1000, UTC)


def traffic_tables(notebook: Path, column: str) -> list[pd.DataFrame]:
    """The simulator's traffic tables, one per phase: a row per request batch ("lote" column)."""
    return [t for t in tables_with(notebook, "lote", column) if "lote" in t.columns]


def training_runs(story: Story, notebook: Path) -> list[tuple[Run, list[Run]]]:
    """The training runs (level 1, retraining) this executed notebook made, each with its nested
    candidate runs, in start order (a hyper-parameter search's runs are not training runs)."""
    client = story.client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    begin, end = ran_between(notebook)
    made = [
        r for r in client.search_runs(experiments, max_results=5000) if begin <= started(r) <= end
    ]
    children = defaultdict(list)
    for run in made:
        if "mlflow.parentRunId" in run.data.tags:
            children[run.data.tags["mlflow.parentRunId"]].append(run)
    training = {"training", "retraining"}
    parents = sorted(
        (r for r in made if r.info.run_id in children and r.data.tags.get("pipeline") in training),
        key=started,
    )
    return [(parent, children[parent.info.run_id]) for parent in parents]


def logged_candidates(candidates: list[Run]) -> dict[str, dict[str, float]]:
    """Each nested candidate run's f1 macro and accuracy on the held-out rows, as MLflow has them."""
    return {
        run.data.tags["mlflow.runName"]: {
            "f1_macro": run.data.metrics["eval_f1_macro"],
            "accuracy": run.data.metrics["eval_accuracy"],
        }
        for run in candidates
    }


def version_tags(story: Story, model_version: str) -> dict[str, str]:
    """The tags the registry keeps on one version of the kit's model."""
    return story.client().get_model_version(story.settings.model_name, model_version).tags


def new_champions(notebook: Path) -> list[str]:
    """The versions the notebook printed as 'vN é o novo champion'."""
    return re.findall(r"v(\d+) é o novo champion", printed(notebook))


# --- notebook 02: the candidates and the gate ---


def test_02_shows_and_logs_each_candidates_f1_on_the_held_out_season(story: Story) -> None:
    for notebook in story.executed("02"):
        shown = shown_candidates(notebook)
        assert flat(shown) == pytest.approx(flat(SHOWN_CANDIDATES), abs=METRIC_TOL), notebook
        # three training runs: every measurement, the same again, the level-0 measurements
        logged = [logged_candidates(c) for _, c in training_runs(story, notebook)]
        assert flat(logged) == pytest.approx(
            flat([CANDIDATES_ALL_MEASUREMENTS, CANDIDATES_ALL_MEASUREMENTS, CANDIDATES_LEVEL0]),
            abs=METRIC_TOL,
        ), notebook
        assert flat(shown) == pytest.approx(flat([logged[0], logged[2]]), abs=METRIC_TOL)


def test_02_the_gate_promotes_the_first_run_and_refuses_the_others(story: Story) -> None:
    for notebook in story.executed("02"):
        runs = [parent for parent, _ in training_runs(story, notebook)]
        assert [r.data.tags["promoted"] for r in runs] == ["true", "false", "false"], notebook
        versions = [r.data.tags["registered_version"] for r in runs]
        (summary, *_) = tables_with(notebook, "champion agora")
        assert version(summary.loc["champion agora"].iloc[0]) == versions[0]
        assert new_champions(notebook) == [versions[0]]
        assert [version_tags(story, v)["gate"] for v in versions] == [
            "passed",
            "refused",
            "refused",
        ]
        # the registry's record: promoted by the gate, still champion when the notebook ended
        champion = version_tags(story, versions[0])
        assert champion["promoted_by"] == "gate"
        _, end = ran_between(notebook)
        until = champion.get("champion_until")
        assert until is None or datetime.fromisoformat(until) >= end.replace(microsecond=0)


# --- notebook 03: the gate, staging then production, a broken candidate stopped at staging ---


def test_03_delivers_through_staging_and_stops_a_broken_candidate_there(story: Story) -> None:
    for notebook, next_one in zip(story.executed("03"), story.executed("04"), strict=True):
        ((run, _),) = training_runs(story, notebook)
        promoted = run.data.tags["registered_version"]
        assert run.data.tags["promoted"] == "true"
        assert new_champions(notebook) == [promoted]
        # the environments, declared once, started before the gate: each API follows its alias
        (environments,) = tables_with(notebook, "ambiente", "a API segue o alias")
        assert environments.set_index("ambiente")["a API segue o alias"].to_dict() == {
            "staging": "staging",
            "produção": "champion",
        }
        text = printed(notebook)
        (broken,) = re.findall(r"entrega de v(\d+) em staging: FALHOU", text)
        assert f"staging: v{broken} → v{promoted} (falhou)" in text
        assert f"staging agora serve v{promoted}" in text
        assert f"v{broken} falhou em staging" in text
        tags = version_tags(story, promoted)
        assert tags["staging"] == "passed"
        assert version_tags(story, broken)["staging"] == "failed"
        last_registry_table = tables_with(notebook, "versão", "aliases")[-1]
        assert last_registry_table.set_index("versão")["aliases"].to_dict() == {
            promoted: "champion, staging",
            broken: "",
        }
        # the notebook after it found that champion: its normal traffic was answered by it
        normal, *_ = traffic_tables(next_one, "versão do modelo")
        assert set(normal["versão do modelo"]) == {promoted}, next_one


# --- notebook 04: confidence before and after the loop, the retrained champion ---


def test_04_the_low_confidence_share_falls_after_the_loop(story: Story) -> None:
    for notebook in story.executed("04"):
        shares = shown_low_confidence(notebook)
        assert shares == pytest.approx(LOW_CONFIDENCE_SHARE, abs=SHARE_TOL), notebook
        assert shares["after"] < shares["shift"]
        # the same shares as the traffic tables of each phase (equal batches: the mean of the batches)
        normal, shift, _in_shadow, after = traffic_tables(notebook, "parte com baixa confiança")
        phases = (normal, shift, after)  # the shadow phase is answered as the shift phase was
        per_batch = [t["parte com baixa confiança"].map(number).mean() for t in phases]
        assert per_batch == pytest.approx(list(shares.values()), abs=SHARE_TOL)


def test_04_the_retrained_challenger_runs_in_shadow_then_becomes_champion(story: Story) -> None:
    for notebook in story.executed("04"):
        ((run, candidates),) = training_runs(story, notebook)
        challenger = run.data.tags["registered_version"]
        assert run.data.tags["promoted"] == "false", notebook  # not at once: in shadow first
        assert run.data.tags["in_shadow"] == "true", notebook
        # the shadow phase: answered by the old champion, scored by the challenger beside it
        _normal, _shift, in_shadow, _after = traffic_tables(notebook, "versão do modelo")
        assert challenger not in set(in_shadow["versão do modelo"])
        (compared,) = tables_with(notebook, "modelo", "versões")
        assert compared["versões"].astype(str).tolist()[1] == challenger
        assert f"a API pontua v{challenger} em shadow\n" in printed(notebook)
        assert "pontuou 100 previsões ao vivo em shadow" in printed(notebook)
        f1 = shown_retraining_f1(notebook)
        assert f1 == pytest.approx(RETRAINING_F1, abs=METRIC_TOL)
        best = max(c.data.metrics["eval_f1_macro"] for c in candidates)
        assert best == pytest.approx(f1["challenger"], abs=METRIC_TOL)
        assert f"a API agora serve v{challenger}\n" in printed(notebook)
        (table,) = tables_with(notebook, "versão do modelo servida")
        served = [version(v) for v in table.loc["versão do modelo servida"]]
        assert served[0] == served[1] != challenger and served[2] == challenger
        *_, after = traffic_tables(notebook, "versão do modelo")
        assert set(after["versão do modelo"]) == {challenger}
        assert version_tags(story, challenger)["promoted_by"] == "shadow"
    client = story.client()
    now = client.get_model_version_by_alias(story.settings.model_name, "champion").version
    assert str(now) == challenger  # the last notebook that ran left its challenger as champion


# --- the committed outputs are the figures of today's code ---


def test_the_committed_notebooks_show_the_figures_of_a_fresh_run(story: Story) -> None:
    committed = {nb.name[:2]: nb for nb in COMMITTED}
    fresh = {prefix: story.executed(prefix)[0] for prefix in ("02", "04")}
    for prefix, read, expected, tol in (
        ("02", lambda nb: flat(shown_candidates(nb)), flat(SHOWN_CANDIDATES), METRIC_TOL),
        ("04", shown_low_confidence, LOW_CONFIDENCE_SHARE, SHARE_TOL),
        ("04", shown_retraining_f1, RETRAINING_F1, METRIC_TOL),
    ):
        shown = read(committed[prefix])
        assert shown == pytest.approx(expected, abs=tol), committed[prefix].name
        assert read(fresh[prefix]) == pytest.approx(shown, abs=tol), (
            f"{committed[prefix].name}: the committed outputs are stale"
        )
