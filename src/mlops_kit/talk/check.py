"""The evening before the talk: check everything a presenter needs and say GO or NO-GO."""

from __future__ import annotations

import socket
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mlops_kit.config import PENGUINS_CSV, PROJ_ROOT, Settings, get_settings

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
    note = PENGUINS_CSV.parent / "README.md"
    digest = file_sha256(PENGUINS_CSV) if PENGUINS_CSV.exists() else "missing"
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
    from mlops_kit.services import start_api
    from mlops_kit.talk.browser import docs_work

    try:
        with start_api(settings) as api:
            ok, detail = docs_work(api.url)
    except RuntimeError as exc:
        ok, detail = False, str(exc).splitlines()[0]
    return [Item("api", "/docs offline, Try it out", ok, detail)]


def check_lab(notebook: str = "00_o_que_e_mlops.ipynb") -> list[Item]:
    """JupyterLab opens a notebook with the kit's kernel, which starts and goes idle."""
    from mlops_kit.notebook_runner import KERNEL_NAME
    from mlops_kit.services import jupyter_lab
    from mlops_kit.talk.browser import lab_opens_notebook

    try:
        with jupyter_lab(PROJ_ROOT / "notebooks") as url:
            ok, detail = lab_opens_notebook(url, notebook, KERNEL_NAME)
    except RuntimeError as exc:
        ok, detail = False, str(exc).splitlines()[0]
    return [Item("lab", f"opens on kernel '{KERNEL_NAME}'", ok, detail)]


def check_mlflow_ui(settings: Settings) -> list[Item]:
    """The MLflow UI starts on the kit's tracking store and serves its page."""
    from mlops_kit.services import start_mlflow_server

    try:
        with start_mlflow_server(settings.tracking_uri, timeout=90) as ui:
            status = _status(ui.url + "/")
    except RuntimeError as exc:
        return [Item("mlflow-ui", "start", False, str(exc).splitlines()[0])]
    return [Item("mlflow-ui", "start and page", status == 200, f"HTTP {status}")]


def _status(url: str) -> int:
    import httpx

    return httpx.get(url, timeout=10).status_code


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
