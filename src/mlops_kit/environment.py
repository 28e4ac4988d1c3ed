"""Symmetry between environments: the Python and packages a model was trained with, against these.

MLflow writes them beside every model it logs: ``python_env.yaml`` (or ``python_version`` in
``MLmodel``) and ``requirements.txt`` (the kit pins its own, see ``candidate_log.pip_requirements``). Here
they are compared with what this interpreter has installed. A difference beyond the patch version
(major or minor, or a package missing here) is a mismatch: the model may not load, or may answer
differently. A patch-only difference is reported and still matches.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

PYTHON = "python"
RETRAIN = "or retrain the model in this environment"
TABLE_COLUMNS = ["package", "trained with", "here", "match", "note"]
_DIFFERS = {
    "major": "major version differs",
    "minor": "minor version differs",
    "unknown": "the versions differ",
}


@dataclass(frozen=True)
class Package:
    """One package (or Python itself): the version the model recorded, the one here, and the verdict."""

    name: str
    model: str | None
    here: str | None
    match: bool
    note: str | None = None  # why it does not match and the fix, or that only the patch differs


@dataclass(frozen=True)
class Environment:
    """The serving environment against the model's recorded one."""

    python: Package
    packages: tuple[Package, ...]

    @property
    def match(self) -> bool:
        """True unless Python or a package differs beyond its patch version (or is missing)."""
        return self.python.match and all(p.match for p in self.packages)

    def mismatches(self) -> list[Package]:
        """Python and the packages that do not match, in the model's order."""
        return [p for p in (self.python, *self.packages) if not p.match]

    def as_dict(self) -> dict[str, Any]:
        """The check as JSON: `{"match", "python": {...}, "packages": [{...}, ...]}`."""
        return {
            "match": self.match,
            "python": asdict(self.python),
            "packages": [asdict(p) for p in self.packages],
        }


def _release(text: str) -> tuple[int, ...] | None:
    try:
        release = Version(text).release
    except InvalidVersion:
        return None
    return (*release, 0, 0)[:3]


def difference(model: str, here: str) -> str | None:
    """How far two versions differ: None (the same), "patch", "minor", "major" or "unknown"."""
    a, b = _release(model), _release(here)
    if a is None or b is None:
        return None if model == here else "unknown"
    if a[0] != b[0]:
        return "major"
    if a[1] != b[1]:
        return "minor"
    return None if Version(model) == Version(here) else "patch"


def compare_version(name: str, model: str | None, here: str | None, fix: str) -> Package:
    """One version recorded by the model against the one here; the note names the fix."""
    if here is None:
        return Package(name, model, None, False, f"not installed here: {fix}, {RETRAIN}")
    if model is None:
        return Package(name, None, here, True, "no version recorded by the model")
    how = difference(model, here)
    if how is None:
        return Package(name, model, here, True)
    if how == "patch":
        return Package(name, model, here, True, "only the patch version differs")
    return Package(name, model, here, False, f"{_DIFFERS[how]}: {fix}, {RETRAIN}")


def installed(name: str) -> str | None:
    """The version of a distribution installed here, or None."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def compare_requirement(line: str) -> Package | None:
    """One line of requirements.txt against what is installed; None for lines that name no package."""
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return None  # an option (-r, --index-url), a comment or a URL: nothing to compare
    if req.marker is not None and not req.marker.evaluate():
        return None
    here = installed(req.name)
    pins = [s.version for s in req.specifier if s.operator == "==" and "*" not in s.version]
    if len(pins) == 1 or not req.specifier:
        pin = pins[0] if pins else None
        fix = f"install {req.name}=={pin} here" if pin else f"install {req.name} here"
        return compare_version(req.name, pin, here, fix)
    wanted = str(req.specifier)
    ok = here is not None and req.specifier.contains(here, prereleases=True)
    note = None if ok else f"needs {req.name}{wanted}: install it here, {RETRAIN}"
    return Package(req.name, wanted, here, ok, note)


def recorded_python(model_dir: Path) -> str | None:
    """The Python version the model was logged with: python_env.yaml, else MLmodel."""
    env_file = model_dir / "python_env.yaml"
    if env_file.exists():
        python = (yaml.safe_load(env_file.read_text()) or {}).get("python")
        if python:
            return str(python)
    mlmodel = model_dir / "MLmodel"
    if mlmodel.exists():
        flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
        python = flavor.get("python_function", {}).get("python_version")
        return str(python) if python else None
    return None


def compare_environment(python: str | None, requirements: list[str]) -> Environment:
    """A recorded Python version and requirement lines against this interpreter."""
    here = platform.python_version()
    checked = (compare_requirement(line.strip()) for line in requirements)
    return Environment(
        python=compare_version(PYTHON, python, here, f"use Python {python} here"),
        packages=tuple(p for p in checked if p is not None),
    )


def check_model_dir(model_dir: str | Path) -> Environment:
    """The environment recorded in a downloaded MLflow model directory against this one."""
    path = Path(model_dir)
    requirements = path / "requirements.txt"
    lines = requirements.read_text().splitlines() if requirements.exists() else []
    return compare_environment(recorded_python(path), lines)


def _rows(check: Environment | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Python, then each package, as JSON rows (from the check, or from the API's answer)."""
    found = check.as_dict() if isinstance(check, Environment) else check
    return [found["python"], *found["packages"]]


def environment_table(check: Environment | Mapping[str, Any]) -> pd.DataFrame:
    """Python and every package, trained with / here, one row each (the API's JSON works too)."""
    return pd.DataFrame(
        [(r["name"], r["model"], r["here"], r["match"], r["note"] or "") for r in _rows(check)],
        columns=TABLE_COLUMNS,
    )


def summary(check: Environment | Mapping[str, Any]) -> str:
    """One line: what matches, or each mismatch with both versions and the fix."""
    rows = _rows(check)
    bad = [r for r in rows if not r["match"]]
    if not bad:
        return f"Python and the recorded packages ({len(rows) - 1}) match the training environment"
    return "; ".join(
        f"{r['name']} {r['model']} (training) vs {r['here'] or 'none'} (here): {r['note']}"
        for r in bad
    )


def table_lines(check: Environment | Mapping[str, Any]) -> list[str]:
    """The table for a terminal or a CI log: one line per package, trained with -> here."""
    out = ["environment, trained with -> here:"]
    for r in _rows(check):
        line = f"  {'ok    ' if r['match'] else 'FAILED'} {r['name']:<13} "
        line += f"{r['model'] or '-'} -> {r['here'] or '-'}"
        out.append(f"{line}  {r['note']}" if r["note"] else line)
    return out
