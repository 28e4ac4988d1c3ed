"""The papermill runner: notebooks run headless with parameters, kept as reports, failures exit non-zero."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from mlflow.tracking import MlflowClient

from mlops_kit.config import get_settings
from mlops_kit.notebook_runner import (
    KERNEL_NAME,
    NOTEBOOKS_DIR,
    FinishedNotebookKernelManager,
    notebook_imports,
    resolve_notebooks,
    run_notebooks,
    summary_lines,
)
from mlops_kit.registry import registry_table
from mlops_kit.store.lock import workspace_lock
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # real training, notebooks or server processes

TRAINING_NOTEBOOK = "02"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A workspace and runs folder of this test's own; no tracking server from the environment."""
    monkeypatch.setenv("MLOPS_KIT_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("MLOPS_KIT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return get_settings()


def test_resolve_notebooks_by_number_and_name() -> None:
    by_number = resolve_notebooks(["02"])
    by_name = resolve_notebooks(["02_pipeline_automatizado"])
    assert by_number == by_name == [NOTEBOOKS_DIR / "02_pipeline_automatizado.ipynb"]
    numbers = [p.name[:2] for p in resolve_notebooks(None)]
    assert numbers[:3] == ["00", "01", "02"] and numbers == sorted(numbers)
    with pytest.raises(ValueError, match="available"):
        resolve_notebooks(["99"])


def test_training_notebook_runs_with_parameters_and_is_attached_as_report(isolated) -> None:
    # the pipeline holds the workspace lock; the notebook's kernel trains under the same hold
    runs = run_notebooks(resolve_notebooks([TRAINING_NOTEBOOK]), {"QUALITY_GATE": 0.5}, isolated)

    assert len(runs) == 1 and runs[0].ok, runs[0].error
    executed = json.loads(runs[0].output.read_text())
    injected = [
        c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
    ]
    assert injected and "QUALITY_GATE = 0.5" in "".join(injected[0]["source"])
    # the notebook trains four times: the pipeline, the same again (the gate refuses an equal
    # model), the level-0 measurements (the gate refuses a weaker one) and the tuned candidates
    assert len(runs[0].mlflow_run_ids) == 4
    client = MlflowClient(isolated.tracking_uri)
    for run_id in runs[0].mlflow_run_ids:
        assert client.get_run(run_id).data.params["quality_gate"] == "0.5"
        reports = {a.path for a in client.list_artifacts(run_id, "report")}
        html = runs[0].output.with_suffix(".html").name
        # the .ipynb to re-run, and a page MLflow's UI previews
        assert reports == {f"report/{runs[0].output.name}", f"report/{html}"}
    page = runs[0].output.with_suffix(".html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "celltag_injected-parameters" in page
    assert "data:image/png;base64," in page  # the notebook's figures travel inside the page
    assert "<script src=" not in page  # nothing to fetch: it reads the same offline
    table = registry_table(isolated)
    assert list(table["version"]) == [1, 2, 3, 4]
    assert table.loc[0, "aliases"] == "champion"
    assert "ok" in summary_lines(runs)[0]
    summary = (runs[0].output.parent / "summary.txt").read_text()
    assert "02_pipeline_automatizado" in summary and runs[0].mlflow_run_ids[0][:8] in summary


def test_failing_notebook_exits_nonzero_keeps_the_executed_copy_and_registers_nothing(
    isolated, tmp_path: Path
) -> None:
    result = run_cli("pipeline", TRAINING_NOTEBOOK, "-p", "DATA_PATH=no/such/file.csv")

    assert result.returncode == 1
    assert "FAILED" in result.stdout
    assert "data file not found" in result.stdout
    kept = list((tmp_path / "runs").glob("*/02_pipeline_automatizado.ipynb"))
    assert len(kept) == 1
    assert any(
        o.get("output_type") == "error"
        for c in json.loads(kept[0].read_text())["cells"]
        for o in c.get("outputs", [])
    )
    assert registry_table(isolated).empty


def test_unknown_parameter_is_refused_before_anything_runs(isolated, tmp_path: Path) -> None:
    result = run_cli("pipeline", TRAINING_NOTEBOOK, "-p", "NO_SUCH_PARAM=1")

    assert result.returncode == 2
    assert "unknown parameter(s): NO_SUCH_PARAM" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_parameter_without_value_is_refused(isolated) -> None:
    result = run_cli("pipeline", TRAINING_NOTEBOOK, "-p", "QUALITY_GATE")

    assert result.returncode == 2
    assert "NAME=VALUE" in result.stderr


def test_papermill_cli_runs_the_training_notebook_headless(isolated, tmp_path: Path) -> None:
    out = tmp_path / "out.ipynb"
    papermill = Path(sys.executable).with_name("papermill")
    result = subprocess.run(
        [
            str(papermill),
            str(NOTEBOOKS_DIR / "02_pipeline_automatizado.ipynb"),
            str(out),
            "-p",
            "QUALITY_GATE",
            "1.01",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # an impossible gate is a bad parameter: the job fails visibly and nothing is registered
    assert result.returncode != 0
    assert "quality gate must be between 0 and 1" in result.stderr + out.read_text()
    assert registry_table(isolated).empty


async def _sigint_seen_at_shutdown(manager_class: type, marker: Path) -> bool:
    """Start a kernel, make it note any SIGINT in a file, shut it down: was it interrupted?"""
    code = (
        "import signal\n"
        "kernel = get_ipython().kernel\n"
        "kernel.pre_handler_hook = kernel.post_handler_hook = lambda: None  # keep our handler\n"
        f"signal.signal(signal.SIGINT, lambda *_: open({str(marker)!r}, 'w').write('SIGINT'))\n"
    )
    manager = manager_class(kernel_name=KERNEL_NAME)
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(code, timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        await manager.shutdown_kernel()
    return marker.exists()


@pytest.mark.parametrize(
    ("manager_class", "interrupted"),
    [(AsyncKernelManager, True), (FinishedNotebookKernelManager, False)],
)
def test_a_finished_notebooks_kernel_is_shut_down_without_a_sigint(
    tmp_path: Path, manager_class: type, interrupted: bool
) -> None:
    # jupyter_client's default shutdown interrupts first; a kernel still finishing papermill's
    # last request then logs "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel."
    marker = tmp_path / "sigint"
    assert asyncio.run(_sigint_seen_at_shutdown(manager_class, marker)) is interrupted


def test_a_pipeline_that_finds_the_workspace_busy_exits_75(isolated, tmp_path: Path) -> None:
    with workspace_lock(isolated, "training"):
        # another command, not a child of this one (a child would share the hold)
        result = run_cli("pipeline", "00", MLOPS_KIT_LOCK_TIMEOUT="0.5", MLOPS_KIT_LOCK_HELD="")

    assert result.returncode == 75
    assert "the workspace is busy: training (pid " in result.stderr
    assert not (tmp_path / "runs").exists()
    with workspace_lock(isolated, "pipeline", timeout=0):  # released: can be taken again
        pass


def test_scheduled_job_fails_visibly_when_the_gate_refuses(isolated, tmp_path: Path) -> None:
    run_training_pipeline(isolated)  # a champion exists; the job's model will not beat it

    # a scheduled job continues the registry's story (FRESH_START would retire the champion)
    result = run_cli(
        "pipeline", TRAINING_NOTEBOOK, "-p", "FAIL_ON_REFUSAL=true", "-p", "FRESH_START=false"
    )

    assert result.returncode == 1
    assert "FAILED" in result.stdout and "quality gate refused" in result.stdout
    assert list((tmp_path / "runs").glob("*/02_pipeline_automatizado.ipynb"))
    assert registry_table(isolated).loc[0, "aliases"] == "champion"  # v1 still serves


def test_notebooks_use_the_settings_they_are_run_with(isolated, tmp_path: Path) -> None:
    other = get_settings(workspace=tmp_path / "other", runs_dir=tmp_path / "other-runs")

    runs = run_notebooks(resolve_notebooks(["01"]), settings=other)

    assert runs[0].ok, runs[0].error
    assert (other.handoff_dir / "modelo_final_v2_agora_vai.joblib").exists()
    assert not isolated.handoff_dir.exists()  # the environment's workspace was not used


@pytest.fixture
def wine_csv(tmp_path: Path) -> Path:
    """scikit-learn's wine data as a user's CSV: no season column, the target named 'cultivar'."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    table = wine.data.assign(cultivar=[f"cultivar_{t + 1}" for t in wine.target])
    path = tmp_path / "wine.csv"
    table.to_csv(path, index=False)
    return path


def _training_runs(settings) -> list:
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if r.data.tags.get("pipeline") == "training"]


def test_the_training_notebook_runs_on_a_users_table_given_only_path_and_target(
    isolated, wine_csv: Path
) -> None:
    # from the user's own folder, with a relative path, no features and no split column
    result = run_cli(
        "pipeline",
        TRAINING_NOTEBOOK,
        "-p",
        "DATA_PATH=wine.csv",
        "-p",
        "TARGET=cultivar",
        "-p",
        "CANDIDATES=[logistic_regression]",
        cwd=wine_csv.parent,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    runs = _training_runs(isolated)
    assert len(runs) == 2  # the notebook trains twice
    params = runs[0].data.params
    assert params["data_path"] == str(wine_csv)
    assert params["target"] == "cultivar"
    # the table's own columns, not the penguins' (derived by the data stage)
    assert "alcohol" in params["features"] and "proline" in params["features"]
    assert "island" not in params["features"]
    assert params["split"] == "random"  # the penguins' date_egg did not apply
    assert registry_table(isolated).loc[0, "aliases"] == "champion"


def test_features_and_split_column_none_as_written_on_the_command_line(isolated) -> None:
    result = run_cli(
        "pipeline",
        TRAINING_NOTEBOOK,
        "-p",
        "FEATURES=bill_length_mm, flipper_length_mm",
        "-p",
        "SPLIT_COLUMN=none",
        "-p",
        "CANDIDATES=[logistic_regression]",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    runs = _training_runs(isolated)
    assert {r.data.params["split"] for r in runs} == {"random"}
    # the pipeline and its repeat train on the given features (a third run, on the penguins,
    # trains level 0's own measurements for comparison)
    features = [r.data.params["features"] for r in runs]
    assert features.count("bill_length_mm,flipper_length_mm") == 2


def test_unreadable_features_are_refused_before_anything_runs(isolated, tmp_path: Path) -> None:
    result = run_cli("pipeline", TRAINING_NOTEBOOK, "-p", "FEATURES=[alcohol, hue")

    assert result.returncode == 2
    assert "must look like [a, b] or 'a, b'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_loop_notebook_runs_on_a_users_table_given_only_path_and_target(
    isolated, wine_csv: Path
) -> None:
    result = run_cli(
        "pipeline", "04", "-p", "DATA_PATH=wine.csv", "-p", "TARGET=cultivar", cwd=wine_csv.parent
    )

    assert result.returncode == 0, result.stdout + result.stderr
    executed = next(isolated.runs_dir.rglob("04_*.ipynb"))
    shown = "".join(
        "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
        for cell in json.loads(executed.read_text())["cells"]
        for out in cell.get("outputs", [])
    )
    assert "alcohol: valores" in shown  # the default shift of this table: its first number
    assert "retreino devido" in shown and "captados" in shown
    params = _training_runs(isolated)[0].data.params
    assert params["target"] == "cultivar" and "proline" in params["features"]


def _notebook(path: Path, *sources: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": KERNEL_NAME}
    nbformat.write(nb, path)
    return path


def _kernels() -> int:
    """Kernels this test process started and that still run (other tests' kernels not counted)."""
    ps = subprocess.run(["ps", "-eo", "ppid=,args="], capture_output=True, text=True, check=True)
    mine = [line.split(None, 1) for line in ps.stdout.splitlines()]
    return sum(
        int(ppid) == os.getpid() and "ipykernel_launcher" in args for ppid, args in mine if args
    )


def test_the_next_kernel_starts_early_with_its_own_environment_and_folder(
    isolated, tmp_path: Path
) -> None:
    # what each kernel has loaded before its first cell: the second notebook imports
    # xml.dom.minidom in a later cell, the third MLflow (so its kernel loads MLflow's SQL stores)
    show = (
        "import os, sys; print(os.getcwd(), os.environ['MLOPS_KIT_INVOCATION_ID'], "
        "'xml.dom.minidom' in sys.modules, 'mlflow.store.tracking.sqlalchemy_store' in sys.modules)"
    )
    folder = tmp_path / "nbs"
    folder.mkdir()
    notebooks = [
        _notebook(folder / "00_a.ipynb", show),
        _notebook(folder / "01_b.ipynb", show, "import xml.dom.minidom"),
        _notebook(folder / "02_c.ipynb", show, "import mlflow"),
    ]
    before = _kernels()
    results = run_notebooks(notebooks, settings=isolated, out_dir=tmp_path / "out")
    assert [r.ok for r in results] == [True, True, True]
    seen = [
        "".join(json.loads(r.output.read_text())["cells"][0]["outputs"][0]["text"]).split()
        for r in results
    ]
    assert [s[0] for s in seen] == [str(folder)] * 3  # each kernel in the notebook's folder
    assert len({s[1] for s in seen}) == 3  # each notebook tags its runs with its own invocation
    assert [s[2:] for s in seen] == [
        ["False", "False"],  # the first kernel only started
        ["True", "False"],  # the next ones came warm, with what their notebook imports
        ["False", "True"],  # and MLflow's stores where that loads MLflow
    ]
    first_cell = json.loads(results[1].output.read_text())["cells"][0]
    assert first_cell["execution_count"] == 1  # the warm-up left no trace in the notebook
    assert _kernels() == before  # every kernel, the warm ones included, was shut down


def test_a_run_that_stops_early_shuts_the_warm_kernel_down(isolated, tmp_path: Path) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    failing = _notebook(folder / "00_a.ipynb", "raise SystemExit('no')")
    never = _notebook(folder / "01_b.ipynb", "print('never')")
    before = _kernels()
    results = run_notebooks([failing, never], settings=isolated, out_dir=tmp_path / "out")
    assert [r.ok for r in results] == [False]
    assert _kernels() == before


def test_a_kernel_warms_up_with_what_its_notebook_imports(tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path / "00_a.ipynb",
        "import json, xml.dom\nfrom mlops_kit import deploy\nfrom mlops_kit.talk import screen",
        "%time x = 1",  # a magic: not Python, its imports are not read
        "from mlops_kit.config import get_settings\nfrom . import nothing",
    )
    assert notebook_imports(notebook) == [
        "json",
        "xml.dom",
        "mlops_kit.deploy",
        "mlops_kit.talk.screen",
        "mlops_kit.config.get_settings",
    ]


def test_a_run_that_made_no_mlflow_runs_leaves_no_mlflow_database(isolated, tmp_path) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    plain = _notebook(folder / "00_a.ipynb", "print(1 + 1)")
    results = run_notebooks([plain], settings=isolated, out_dir=tmp_path / "out")
    assert [r.ok for r in results] == [True]
    assert results[0].mlflow_run_ids == []
    assert not isolated.mlflow_db.exists()  # looking for runs to attach the report to made none


def test_a_headless_kernel_runs_its_notebooks_exit_handlers(isolated, tmp_path: Path) -> None:
    # a headless kernel leaves without tearing its modules down, but only after the handlers the
    # notebook registered (the kit's servers are stopped by one), in both kernels of a run
    folder = tmp_path / "nbs"
    folder.mkdir()
    marks = [tmp_path / "first", tmp_path / "second"]
    register = "import atexit, pathlib; atexit.register(pathlib.Path({!r}).write_text, 'bye')"
    notebooks = [
        _notebook(folder / "00_a.ipynb", register.format(str(marks[0]))),
        _notebook(folder / "01_b.ipynb", register.format(str(marks[1]))),
    ]
    results = run_notebooks(notebooks, settings=isolated, out_dir=tmp_path / "out")
    assert [r.ok for r in results] == [True, True]
    assert [m.read_text() for m in marks] == ["bye", "bye"]
