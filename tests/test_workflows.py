"""The repository's own CI/CD workflows: valid for GitHub, and thin callers of the Makefile."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_kit.config import PROJ_ROOT

pytestmark = pytest.mark.slow  # real training, notebooks or server processes

WORKFLOWS = sorted((PROJ_ROOT / ".github" / "workflows").glob("*.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


def _validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _make_targets() -> set[str]:
    text = (PROJ_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][a-zA-Z0-9_-]*):", text, flags=re.MULTILINE))


def _load(path: Path) -> dict:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on"
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def test_the_expected_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "train.yml", "deploy.yml", "canary.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_for_github(path: Path):
    result = _validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    steps:\n      - run: make test\n"
    )  # no runs-on
    result = _validate(broken)
    assert result.returncode != 0
    assert "runs-on" in result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_is_a_make_target_a_person_can_run(path: Path):
    targets = _make_targets()
    for name, job in _load(path)["jobs"].items():
        for step in job["steps"]:
            if "run" not in step:
                continue
            command = step["run"].strip()
            assert re.fullmatch(r"make [a-z-]+( [a-z-]+)*", command), (
                f"{name}: logic in YAML: {command}"
            )
            for target in command.split()[1:]:
                assert target in targets, f"{path.name}/{name}: no Makefile target '{target}'"


def test_triggers():
    triggers = {p.name: _load(p)["on"] for p in WORKFLOWS}
    assert {"push", "pull_request"} <= set(triggers["ci.yml"])
    assert {"schedule", "workflow_dispatch"} <= set(triggers["train.yml"])
    assert "schedule" in triggers["canary.yml"]
