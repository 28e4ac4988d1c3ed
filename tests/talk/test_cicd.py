"""Notebook 03's helpers: the workflow tables, a live test run, and the levels comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_kit.talk import cicd


def test_workflows_table_lists_each_workflow_with_its_make_targets():
    table = cicd.workflows_table().set_index("workflow")
    assert set(table.index) >= {"ci.yml", "train.yml", "deploy.yml", "canary.yml"}
    assert "push" in table.loc["ci.yml", "triggers"]
    assert table.loc["train.yml", "make targets, in order"] == "install → train-job → deploy-smoke"


def test_targets_table_says_in_portuguese_what_each_target_the_workflows_call_does():
    table = cicd.targets_table().set_index("command")
    assert table.loc["make deploy-smoke", "what it does"].startswith("CD: sobe a API")
    documented = cicd.make_targets()
    assert set(table.index.str.removeprefix("make ")) <= set(documented)  # real targets
    assert set(table.index.str.removeprefix("make ")) <= set(cicd.TARGETS_PT)  # all in Portuguese


@pytest.mark.slow
def test_run_tests_reports_green_and_red(tmp_path: Path):
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    (tmp_path / "test_bad.py").write_text("def test_bad():\n    assert 1 + 1 == 3\n")

    green = cicd.run_tests(["test_ok.py"], root=tmp_path)
    red = cicd.run_tests(["test_ok.py", "test_bad.py"], root=tmp_path)

    assert green == {"tests": "test_ok.py", "passed": 1, "failed": 0, "green": True}
    assert (red["passed"], red["failed"], red["green"]) == (1, 1, False)


def test_levels_table_shows_the_measured_times():
    table = cicd.levels_table(pipeline_seconds=3.0, delivery_seconds=5.5)
    assert list(table.index) == [0, 1, 2]
    assert "3,0 s" in table.loc[1, "de dados novos a modelo servido"]
    assert "8,5 s" in table.loc[2, "de dados novos a modelo servido"]
