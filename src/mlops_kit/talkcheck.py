"""The evening before the talk: check everything a presenter needs and say GO or NO-GO."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mlops_kit.config import PROJ_ROOT, Settings, get_settings

PINNED = ("mlflow", "scikit-learn", "pandas", "papermill", "nbval", "jupyterlab")


@dataclass
class Item:
    """One check: which area, what, whether it passed, what was seen."""

    area: str
    check: str
    ok: bool
    detail: str


@dataclass
class TalkCheck:
    """All the checks; GO only when every one passed."""

    items: list[Item] = field(default_factory=list)

    @property
    def go(self) -> bool:
        """True when every check passed."""
        return all(i.ok for i in self.items)

    def lines(self) -> list[str]:
        """The report a presenter reads."""
        out = [
            f"  {'ok    ' if i.ok else 'FAILED'} {i.area:<10} {i.check:<28} {i.detail}"
            for i in self.items
        ]
        failed = [i for i in self.items if not i.ok]
        out.append("")
        out.append(
            "GO: everything the talk needs works."
            if not failed
            else f"NO-GO: {len(failed)} problem(s), see the FAILED lines above."
        )
        return out


def _pins(constraints: Path = PROJ_ROOT / "constraints.txt") -> dict[str, str]:
    pins = {}
    if constraints.exists():
        for line in constraints.read_text().splitlines():
            name, sep, pinned = line.partition("==")
            if sep:
                pins[name.strip().lower()] = pinned.strip()
    return pins


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_setup(settings: Settings, ports: dict[str, int] | None = None) -> list[Item]:
    """Python, the kernel, pinned versions, the shipped data, and the ports the demo will use."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from mlops_kit.notebook_runner import KERNEL_NAME
    from mlops_kit.tables import file_sha256

    items = [
        Item(
            "setup",
            "Python >= 3.11",
            sys.version_info >= (3, 11),
            sys.version.split()[0],
        )
    ]
    try:
        argv = KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv
        same = Path(argv[0]).resolve() == Path(sys.executable).resolve()
        items.append(Item("setup", f"kernel '{KERNEL_NAME}'", same, f"runs {argv[0]}"))
    except NoSuchKernel:
        items.append(Item("setup", f"kernel '{KERNEL_NAME}'", False, "not installed: make install"))
    pins = _pins()
    for package in PINNED:
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "missing"
        pinned = pins.get(package, installed)
        items.append(
            Item("setup", f"{package} pinned", installed == pinned, f"{installed} (pin {pinned})")
        )
    note = settings.data_path.parent / "README.md"
    digest = file_sha256(settings.data_path) if settings.data_path.exists() else "missing"
    matches = note.exists() and digest in note.read_text()
    items.append(Item("setup", "raw data sha256", matches, digest[:16] + "…"))
    for name, port in (ports or {}).items():
        items.append(
            Item(
                "setup",
                f"port {port} free ({name})",
                _port_free(port),
                "free" if _port_free(port) else "in use",
            )
        )
    return items


def check_notebooks(settings: Settings, names: list[str] | None = None) -> list[Item]:
    """Run the notebooks headless, as `make demo` does, in the check's own workspace."""
    from mlops_kit.notebook_runner import resolve_notebooks, run_notebooks

    runs = run_notebooks(resolve_notebooks(names), settings=settings, stop_on_failure=False)
    return [
        Item("notebooks", r.notebook, r.ok, f"{r.seconds:.1f} s" if r.ok else (r.error or "failed"))
        for r in runs
    ]


def check_api(settings: Settings) -> list[Item]:
    """The API on the champion the notebooks registered: health, version, one prediction."""
    from mlops_kit.delivery import deploy_smoke

    try:
        smoke = deploy_smoke(settings, rollback_on_failure=False)
    except (ValueError, RuntimeError) as exc:
        return [Item("api", "start and smoke test", False, str(exc).splitlines()[0])]
    return [Item("api", c.name, c.ok, c.detail) for c in smoke.checks]


def check_docs(settings: Settings) -> list[Item]:
    """The API's /docs in headless Chromium with only this machine reachable: "Try it out" works."""
    from mlops_kit.browser import docs_work
    from mlops_kit.serving.process import start_api

    try:
        with start_api(settings) as api:
            ok, detail = docs_work(api.url)
    except RuntimeError as exc:
        ok, detail = False, str(exc).splitlines()[0]
    return [Item("api", "/docs offline, Try it out", ok, detail)]


@contextmanager
def jupyter_lab(notebook_dir: Path, timeout: float = 90.0) -> Iterator[str]:
    """`jupyter lab` headless on a free port of 127.0.0.1; yields its URL with the token; stops it.

    Its layout and checkpoints are kept in a temporary folder: the presenter's open tabs and the
    notebooks folder are not touched.
    """
    from mlops_kit.serving.process import HOST, free_port

    port, token = free_port(), secrets.token_hex(16)
    base = f"http://{HOST}:{port}"
    with tempfile.TemporaryDirectory(prefix="mlops-kit-lab-") as tmp:
        command = [
            str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
            f"--ip={HOST}", f"--port={port}", f"--IdentityProvider.token={token}",
            f"--notebook-dir={notebook_dir}", f"--LabApp.workspaces_dir={tmp}",
            f"--FileCheckpoints.checkpoint_dir={tmp}/checkpoints",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]  # fmt: skip
        if os.geteuid() == 0:
            command.append("--allow-root")
        with open(Path(tmp) / "lab.log", "w") as log:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait_http(f"{base}/api/status?token={token}", proc, timeout)
            yield f"{base}/lab?token={token}"
        finally:
            _stop_lab(proc, f"{base}/api/shutdown?token={token}")


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            _status(url)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s")


def _stop_lab(proc: subprocess.Popen, shutdown_url: str) -> None:
    """Ask the server to shut down (its kernels too); kill its process group if it does not."""
    import urllib.request

    with suppress(OSError):
        urllib.request.urlopen(urllib.request.Request(shutdown_url, method="POST"), timeout=10)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def check_lab(notebook: str = "00_o_que_e_mlops.ipynb") -> list[Item]:
    """JupyterLab opens a notebook with the kit's kernel, which starts and goes idle."""
    from mlops_kit.browser import lab_opens_notebook
    from mlops_kit.notebook_runner import KERNEL_NAME

    try:
        with jupyter_lab(PROJ_ROOT / "notebooks") as url:
            ok, detail = lab_opens_notebook(url, notebook, KERNEL_NAME)
    except RuntimeError as exc:
        ok, detail = False, str(exc).splitlines()[0]
    return [Item("lab", f"opens on kernel '{KERNEL_NAME}'", ok, detail)]


def check_mlflow_ui(settings: Settings) -> list[Item]:
    """The MLflow UI starts on the kit's tracking store and serves its page."""
    from mlops_kit.serving.process import start_mlflow_server

    try:
        with start_mlflow_server(settings.tracking_uri, timeout=90) as ui:
            status = _status(ui.url + "/")
    except RuntimeError as exc:
        return [Item("mlflow-ui", "start", False, str(exc).splitlines()[0])]
    return [Item("mlflow-ui", "start and page", status == 200, f"HTTP {status}")]


def _status(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def run_talk_check(notebooks: list[str] | None = None) -> TalkCheck:
    """Everything, in a temporary workspace: the presenter's demo state is not touched."""
    user = get_settings()
    result = TalkCheck()
    result.items += check_setup(user, {"API": user.api_port, "MLflow UI": 5000})
    with tempfile.TemporaryDirectory(prefix="mlops-kit-talk-check-") as tmp:
        settings = user.model_copy(
            update={
                "workspace": Path(tmp) / "workspace",
                "runs_dir": Path(tmp) / "runs",
                "tracking_uri_override": None,
                "registry_uri_override": None,
                "store_url": None,
            }
        )
        result.items += check_notebooks(settings, notebooks)
        result.items += check_api(settings)
        result.items += check_docs(settings)
        result.items += check_lab()
        result.items += check_mlflow_ui(settings)
    return result
