"""The same story whatever ran before: every notebook, run a second time in the same workspace
(after all of them ran once), shows the decisions of its committed outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlops_kit.config import PROJ_ROOT
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # runs every notebook twice

# Lines that carry a decision: promoted or not and why, the gate, the smoke test and rollback,
# the monitor's verdict, what was captured and labelled.
DECISION = re.compile(
    r"promovido a champion|motivo|champion agora|é o novo champion|quality gate recusou|aprovado|"
    r"recusado|FALHOU|rollback|a API agora serve|retreino|casos captados|casos rotulados|verde"
)


def decisions(notebook: Path) -> list[str]:
    """The decision lines a notebook's outputs show, numbers masked (versions count up on reruns)."""
    lines = []
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(
                output.get("data", {}).get("text/plain", "")
            )
            for line in text.splitlines():
                if DECISION.search(line):
                    lines.append(" ".join(re.sub(r"\d+", "N", line).split()))
    return lines


COMMITTED = sorted((PROJ_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


STATEFUL = ["02", "03", "04"]  # the notebooks whose decisions depend on the registry and the store


def test_a_second_run_of_every_notebook_tells_the_committed_story(settings) -> None:
    for notebooks in ([], STATEFUL):  # all of them once, then the ones with a state again
        result = run_cli("pipeline", *notebooks)
        assert result.returncode == 0, result.stdout + result.stderr
    second = sorted(p for p in settings.runs_dir.iterdir() if p.is_dir())[-1]
    for committed in COMMITTED:
        if committed.name[:2] in STATEFUL:
            assert decisions(committed), f"{committed.name} shows no decision to compare"
            assert decisions(second / committed.name) == decisions(committed), committed.name
