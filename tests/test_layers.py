"""The house's rules, checked the way a user meets them: import a module in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from mlops_kit.config import PROJ_ROOT

SRC = PROJ_ROOT / "src" / "mlops_kit"
TRAINING_SIDE = (
    "mlops_kit.data",
    "mlops_kit.tables",
    "mlops_kit.columns",
    "mlops_kit.train",
    "mlops_kit.registry",
    "mlops_kit.evaluation",
    "mlops_kit.training_pipeline",
    "mlops_kit.notebook_runner",
)


def loaded_after_import(module: str) -> set[str]:
    """The kit's modules in sys.modules after importing `module` in a new interpreter."""
    code = (
        f"import json, sys, {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mlops_kit'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "module", ["mlops_kit.serving.app", "mlops_kit.serving.server", "mlops_kit.scoring.loader"]
)
def test_serving_imports_nothing_from_the_training_side(module: str) -> None:
    loaded = loaded_after_import(module)
    assert not {m for m in loaded if m.startswith(TRAINING_SIDE)}


def test_level_zero_trains_and_evaluates_without_mlflow() -> None:
    """Notebook 01's import cell (the manual process, before tracking) does not load MLflow."""
    code = (
        "import sys; from mlops_kit import data, evaluation, plots, train; "
        "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


# what serving must never pull in: it is the leaf of the house, only the CLI imports it
ABOVE_SERVING = (
    "mlops_kit.talk",
    "mlops_kit.delivery",
    "mlops_kit.team",
    "mlops_kit.postgres",
    "mlops_kit.services",
    "mlops_kit.monitoring",
    "mlops_kit.capture",
    "mlops_kit.labels",
    "mlops_kit.retrain",
    "mlops_kit.simulator",
)


@pytest.mark.parametrize("module", ["mlops_kit.serving.app", "mlops_kit.serving.server"])
def test_serving_is_a_leaf(module: str) -> None:
    loaded = loaded_after_import(module)
    assert not {m for m in loaded if m.startswith(ABOVE_SERVING)}


def test_scoring_stands_below_the_web_package() -> None:
    """The model, its request models and scoring serve the API and batch alike: no web import."""
    modules = sorted(
        "mlops_kit.scoring." + path.stem
        for path in (SRC / "scoring").glob("*.py")
        if path.name != "__init__.py"
    )
    loaded = loaded_after_import(", ".join(modules))
    assert not {m for m in loaded if m.startswith(("mlops_kit.serving", *ABOVE_SERVING))}
    assert not {m for m in loaded if m.startswith(TRAINING_SIDE)}


def test_batch_stands_below_the_web_package() -> None:
    """Batch scoring validates and scores with scoring/, never through the API."""
    loaded = loaded_after_import("mlops_kit.batch.run")
    assert "mlops_kit.scoring.score" in loaded
    assert not {m for m in loaded if m.startswith(("mlops_kit.serving", *ABOVE_SERVING))}


def _imports_of(path: Path) -> set[str]:
    """The absolute module names a source file imports (`from a import b` counts as a.b too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_outside_the_cli_imports_serving() -> None:
    importers = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "cli.py" and "serving" not in path.relative_to(SRC).parts
        for name in _imports_of(path)
        if name == "mlops_kit.serving" or name.startswith("mlops_kit.serving.")
    }
    assert not importers, f"import mlops_kit.serving (only cli.py may): {sorted(importers)}"


THE_LOOP = (
    "mlops_kit.monitoring.monitor",
    "mlops_kit.monitoring.mlflow_log",
    "mlops_kit.capture",
    "mlops_kit.labels",
    "mlops_kit.retrain",
)


@pytest.mark.parametrize("module", [*THE_LOOP, "mlops_kit.simulator.traffic"])
def test_the_loop_imports_nothing_from_serving(module: str) -> None:
    loaded = loaded_after_import(module)
    assert not {m for m in loaded if m.startswith("mlops_kit.serving")}


def test_the_loop_imports_nothing_from_the_demo_or_the_talk() -> None:
    loaded = loaded_after_import(", ".join(THE_LOOP))
    assert not {m for m in loaded if m.startswith(("mlops_kit.simulator", "mlops_kit.talk"))}


# the store is the floor the rest stands on: beside it only the names everyone shares
BELOW_THE_STORE = ("mlops_kit.config", "mlops_kit.confidence", "mlops_kit.dataset")


def test_the_store_imports_nothing_above_it() -> None:
    modules = sorted(
        "mlops_kit." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        for path in (SRC / "store").rglob("*.py")
        if path.name != "__init__.py"
    )
    loaded = loaded_after_import(", ".join(modules))
    above = {
        m
        for m in loaded
        if m != "mlops_kit" and not m.startswith(("mlops_kit.store", *BELOW_THE_STORE))
    }
    assert not above, f"the store loads modules above it: {sorted(above)}"


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"mlops_kit"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_canonical(re.split(r"[<>=!~ \[;]", r)[0]) for r in requirements}


def _optional_packages() -> set[str]:
    """Distributions of the optional extras the kit's code may use (not the dev tools)."""
    project = tomllib.loads((PROJ_ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return _requirement_names([r for name, reqs in extras.items() if name != "dev" for r in reqs])


def test_every_package_the_code_imports_is_declared() -> None:
    project = tomllib.loads((PROJ_ROOT / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"]) | _optional_packages()
    owners = packages_distributions()
    missing = {
        name: owners.get(name, [name])
        for name in _imported_top_levels()
        if not {_canonical(d) for d in owners.get(name, [name])} & declared
    }
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"


def test_optional_packages_are_imported_inside_functions() -> None:
    """An optional extra (pyspark) is imported where it is used: the kit imports without it."""
    owners = packages_distributions()
    optional = _optional_packages()
    eager = {
        f"{path.relative_to(SRC)}: {name}"
        for path in SRC.rglob("*.py")
        for node in ast.parse(path.read_text()).body  # module level only
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
        if {_canonical(d) for d in owners.get(name.split(".")[0], [])} & optional
    }
    assert optional, "pyproject.toml declares no optional extra to check"
    assert not eager, f"optional packages imported at module level: {sorted(eager)}"
