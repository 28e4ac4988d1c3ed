"""Run the kit's notebooks headless with papermill: the automated, scheduled version of the pipeline."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jupyter_client import AsyncKernelManager, BlockingKernelClient
from jupyter_client.utils import run_sync

from mlops_kit.config import PROJ_ROOT, Settings, display_path, settings_env
from mlops_kit.store.lock import child_env, workspace_lock
from mlops_kit.tracking import INVOCATION_ENV

KERNEL_NAME = "mlops-kit"
# the variables that choose MLflow's store, experiment or run; the kit's settings decide those
_MLFLOW_STORE_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
)
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"


@dataclass
class NotebookRun:
    """One executed notebook: where its output is, whether it passed, how long it took."""

    notebook: str
    output: Path
    ok: bool
    seconds: float
    error: str | None = None
    mlflow_run_ids: list[str] = field(default_factory=list)


def install_kernel(prefix: str = sys.prefix) -> str:
    """Register the Jupyter kernel the notebooks name, running this environment's Python."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    # Kernel-infrastructure warnings (e.g. "running over TCP without encryption" on loopback)
    # would land in every headless run's output; the notebooks' own warnings are unaffected.
    spec_dir = write_kernel_spec(
        overrides={"display_name": "Python (mlops-kit)"},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        python_arguments=["-Xfrozen_modules=off"],
    )
    try:
        return KernelSpecManager().install_kernel_spec(
            spec_dir, kernel_name=KERNEL_NAME, prefix=prefix
        )
    finally:
        shutil.rmtree(spec_dir, ignore_errors=True)


class FinishedNotebookKernelManager(AsyncKernelManager):
    """Shuts a kernel down with a shutdown request only, without the SIGINT sent first by default.

    jupyter_client interrupts a kernel before asking it to quit, in case code is still running.
    Papermill's last message is a kernel_info request, and it shuts down as soon as the reply
    arrives: the SIGINT can then land while the kernel is still finishing that request, which it
    logs as "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel." Once the notebook is done,
    nothing runs; a kernel that does not quit still gets SIGTERM, then SIGKILL.
    """

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:
            await super()._async_interrupt_kernel()


# MLflow imports its SQL stores on a notebook's first query (~1 s): a kernel whose notebook's
# modules load MLflow imports them too while it warms up
MLFLOW_SQL_STORES = (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)


# kernels started ahead of the running notebook; past the first WARM_AHEAD, one warms up at a
# time (two at once beside a notebook that trains would be three busy processes on two cores)
WARM_AHEAD = 2


def notebook_imports(notebook: Path) -> list[str]:
    """The modules a notebook's code cells import (``from a import b``: ``a.b`` where b is one)."""
    import ast

    import nbformat

    names: list[str] = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # a cell with IPython magics: its imports are not read
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names += [f"{node.module}.{alias.name}" for alias in node.names]
    return list(dict.fromkeys(names))


def _warm_up_code(modules: list[str]) -> str:
    """Code that a headless kernel runs before its notebook, binding no name in its namespace.

    It imports each module (or its package, where the name is not a module), and MLflow's SQL
    stores where those loaded MLflow. And it makes the kernel leave, once the notebook's own exit
    handlers have run (stopping the servers it started, ending MLflow runs left open), without
    tearing down its modules one by one: that took ~1 s of each shutdown once MLflow was loaded,
    and 0.1 s without.
    """
    code = (
        "import atexit, os, sys\n"
        "atexit.register(os._exit, 0)\n"  # the first registered runs last
        "for name in names:\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError:\n"
        "        try:\n"
        "            __import__(name.rpartition('.')[0] or name)\n"
        "        except ImportError:\n"
        "            pass\n"
        "if names and 'mlflow' in sys.modules:\n"
        "    for name in stores:\n"
        "        __import__(name)\n"
    )
    return f"exec({code!r}, {{'names': {modules!r}, 'stores': {MLFLOW_SQL_STORES!r}}})"


class WarmKernel:
    """A notebook's kernel, started and its heavy libraries imported in the background.

    A headless run goes notebook after notebook; most of a notebook's first seconds are its
    kernel starting and importing pandas, scikit-learn, MLflow and the kit's modules. Doing that
    while the previous notebook runs hides it (``benchmarks/bench_notebooks.py`` measures the
    whole run). The kernel gets the same environment and folder papermill would give it.
    ``imports``: the modules to import first (none: the kernel only starts). ``after``: a kernel
    to let finish warming up first.
    """

    def __init__(
        self,
        environment: dict[str, str],
        cwd: Path,
        imports: list[str],
        after: WarmKernel | None = None,
    ) -> None:
        self.km = FinishedNotebookKernelManager(kernel_name=KERNEL_NAME)
        self.error: BaseException | None = None
        self._after = after
        self._thread = threading.Thread(
            target=self._start, args=(environment, cwd, imports), name="warm-kernel", daemon=True
        )
        self._thread.start()

    def _start(self, environment: dict[str, str], cwd: Path, imports: list[str]) -> None:
        if self._after is not None:
            self._after._thread.join()
        try:
            run_sync(self.km.start_kernel)(env=environment, cwd=str(cwd))
            client = BlockingKernelClient()
            client.load_connection_info(self.km.get_connection_info())
            client.start_channels()
            try:
                client.wait_for_ready(timeout=60)
                client.execute_interactive(
                    _warm_up_code(imports), silent=True, store_history=False, timeout=120
                )
            finally:
                client.stop_channels()
        except BaseException as exc:  # noqa: BLE001 - then the notebook starts its own kernel
            self.error = exc

    def take(self) -> AsyncKernelManager | None:
        """The started kernel for papermill to use, or None (papermill then starts one itself)."""
        self._thread.join()
        if self.error is None and self.km.has_kernel:
            return self.km
        self.stop()
        return None

    def stop(self) -> None:
        """Shut the kernel down (papermill leaves a kernel it was given running)."""
        self._thread.join()
        if self.km.has_kernel:
            run_sync(self.km.shutdown_kernel)()


def list_notebooks(directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The kit's numbered notebooks, in order."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def resolve_notebooks(names: list[str] | None, directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Turn names or number prefixes ('02', '02_pipeline_automatizado') into notebook paths."""
    available = list_notebooks(directory)
    if not names:
        return available
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            chosen.append(path)
            continue
        matches = [
            p
            for p in available
            if p.stem == name or p.name == name or p.stem.startswith(f"{name}_")
        ]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in available)
            raise ValueError(f"notebook '{name}' not found (or ambiguous); available: {known}")
        chosen.extend(matches)
    return chosen


def run_notebooks(
    notebooks: list[Path],
    parameters: dict[str, object] | None = None,
    settings: Settings | None = None,
    out_dir: Path | None = None,
    stop_on_failure: bool = True,
) -> list[NotebookRun]:
    """Execute notebooks with papermill, keep each executed copy, attach it to the MLflow runs it made."""
    settings = settings or Settings()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = out_dir or settings.runs_dir / stamp
    per_notebook = declared_parameters(notebooks, parameters or {})
    with workspace_lock(settings, "pipeline"):  # the notebooks' kernels share this hold
        out_dir.mkdir(parents=True, exist_ok=True)
        results = _execute(notebooks, per_notebook, settings, out_dir, stop_on_failure)
        (out_dir / "summary.txt").write_text("\n".join(summary_lines(results)) + "\n")
    return results


def _execute(
    notebooks: list[Path],
    per_notebook: dict[Path, dict],
    settings: Settings,
    out_dir: Path,
    stop_on_failure: bool,
) -> list[NotebookRun]:
    # the kernel inherits the environment: these settings, and the id that tags its runs
    invocations = [uuid.uuid4().hex for _ in notebooks]
    environments = [
        {**settings_env(settings), **child_env(settings), INVOCATION_ENV: invocation}
        for invocation in invocations
    ]

    def kernel_for(i: int, imports: list[str], after: WarmKernel | None = None) -> WarmKernel:
        environment = _environ_with(environments[i])
        return WarmKernel(environment, notebooks[i].parent, imports, after)

    import papermill as pm  # ~0.5 s, while the first kernel starts

    results: list[NotebookRun] = []
    finishing: list[Finishing] = []
    # the first kernel only starts; the next ones start, and import what their notebook will,
    # WARM_AHEAD notebooks ahead of the one running (01 and 02 while 00 runs: 00 and 01 take
    # about a second each, less than a warm-up)
    warm = {0: kernel_for(0, [])} if notebooks else {}
    try:
        for i, (notebook, invocation) in enumerate(zip(notebooks, invocations, strict=True)):
            output = out_dir / notebook.name
            start = time.perf_counter()
            error = None
            km = warm.pop(i).take()
            for j in range(i + 1, min(i + 1 + WARM_AHEAD, len(notebooks))):
                if j not in warm:
                    after = warm.get(j - 1) if j > WARM_AHEAD else None
                    warm[j] = kernel_for(j, notebook_imports(notebooks[j]), after)
            try:
                with _environment(environments[i]):
                    pm.execute_notebook(
                        str(notebook),
                        str(output),
                        parameters=per_notebook[notebook],
                        kernel_name=KERNEL_NAME,
                        cwd=str(notebook.parent),
                        progress_bar=False,
                        log_output=False,
                        # the executed copy is written once, at the end or at the failing cell,
                        # not after every cell (~100 writes of the whole notebook in a demo run);
                        # a kernel that dies leaves no copy, its error is still reported
                        request_save_on_cell_execute=False,
                        kernel_manager_class=FinishedNotebookKernelManager,
                        km=km,
                    )
            except Exception as exc:  # noqa: BLE001 - papermill raises many kinds; all mean "failed"
                error = _first_line(exc)
            run = NotebookRun(
                notebook.stem, output, error is None, time.perf_counter() - start, error
            )
            results.append(run)
            # decided now, while no kernel runs: a notebook that made no MLflow database made no
            # runs, and the next kernel may be creating it while the report would be looked for
            attach = output.exists() and settings.has_registry
            finishing.append(Finishing(km, run, invocation, settings, attach))
            if error and stop_on_failure:
                break
    finally:
        for kernel in warm.values():  # the run stopped before the notebook it was started for
            kernel.stop()
        for finished in finishing:
            finished.join()
    return results


class Finishing:
    """A notebook's last steps, done while the next notebook runs: its kernel shut down (~1-1.5 s
    once MLflow is loaded), then the executed copy attached to the MLflow runs it made."""

    def __init__(
        self,
        km: AsyncKernelManager | None,
        run: NotebookRun,
        invocation: str,
        settings: Settings,
        attach: bool,
    ) -> None:
        self.error: BaseException | None = None

        def finish() -> None:
            try:
                if km is not None:
                    run_sync(km.shutdown_kernel)()
                if attach:
                    run.mlflow_run_ids = attach_report(run.output, invocation, settings)
            except BaseException as exc:  # noqa: BLE001 - raised again in the runner's thread
                self.error = exc

        self._thread = threading.Thread(target=finish, name=f"finish-{run.notebook}", daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait until the kernel is gone and the report attached; raise what went wrong there."""
        self._thread.join()
        if self.error is not None:
            raise self.error


def _environ_with(values: dict[str, str]) -> dict[str, str]:
    """This process' environment with the kit's and MLflow's variables replaced by these."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not (name.startswith("MLOPS_KIT_") or name in _MLFLOW_STORE_VARS)
    }
    return {**kept, **values}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Replace the kit's and MLflow's variables by these for a while, then put everything back."""
    saved = dict(os.environ)
    replaced = _environ_with(values)
    os.environ.clear()
    os.environ.update(replaced)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def declared_parameters(notebooks: list[Path], parameters: dict[str, object]) -> dict[Path, dict]:
    """Split the given parameters by notebook; a parameter no notebook declares is an error."""
    import papermill as pm

    declared = {nb: set(pm.inspect_notebook(str(nb))) for nb in notebooks}
    unknown = set(parameters) - set().union(*declared.values())
    if unknown:
        known = ", ".join(sorted(set().union(*declared.values())))
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}; known: {known}")
    return {
        nb: {k: v for k, v in parameters.items() if k in names} for nb, names in declared.items()
    }


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    interesting = [line for line in text if line.strip() and not line.startswith("-")]
    return (interesting[-1] if interesting else type(exc).__name__)[:300]


def attach_report(output: Path, invocation: str, settings: Settings) -> list[str]:
    """Log the executed notebook (.ipynb and .html) as the report of each top-level run it made."""
    import mlflow

    from mlops_kit import tracking

    try:
        tracking.configure(settings)
        client = tracking.client(settings)
        experiment = client.get_experiment_by_name(settings.experiment_name)
        if experiment is None:
            return []
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`mlops_kit.invocation_id` = '{invocation}'",
        )
    except mlflow.exceptions.MlflowException:
        return []
    # the top-level runs the notebook started (training, monitoring, retraining…), not the
    # nested candidate runs inside them
    runs = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    if runs:
        html = render_html(output)  # MLflow's UI previews .html; an .ipynb shows as raw JSON
        for run in runs:
            client.log_artifact(run.info.run_id, str(output), "report")
            client.log_artifact(run.info.run_id, str(html), "report")
    return [r.info.run_id for r in runs]


# JupyterLab's look without the scripts it fetches from a CDN (require.js for widgets, MathJax
# for formulas; the notebooks have neither): the page is read offline, e.g. in MLflow's UI.
_OFFLINE_REPORT = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
"""


def render_html(notebook: Path) -> Path:
    """Write the executed notebook as one self-contained HTML page beside it."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        template_file="report.html.j2",
        extra_loaders=[DictLoader({"report.html.j2": _OFFLINE_REPORT})],
        embed_images=True,
    )
    # images a markdown cell links to are found next to the notebook the kit ships
    resources = {"metadata": {"path": str(NOTEBOOKS_DIR)}}
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4), resources)
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def summary_lines(results: list[NotebookRun]) -> list[str]:
    """One line per notebook: status, seconds, MLflow runs, output path."""
    lines = []
    for r in results:
        status = "ok    " if r.ok else "FAILED"
        runs = ",".join(i[:8] for i in r.mlflow_run_ids) or "-"
        lines.append(
            f"{status} {r.seconds:6.1f}s  {r.notebook:<32} mlflow:{runs:<10} {display_path(r.output)}"
        )
        if r.error:
            lines.append(f"       error: {r.error}")
    total = sum(r.seconds for r in results)
    lines.append(f"total  {total:6.1f}s  {sum(r.ok for r in results)}/{len(results)} notebooks ok")
    return lines
