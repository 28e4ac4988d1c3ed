"""The presenter's evening-before check: GO only when setup, notebooks, API and MLflow UI all work."""

from __future__ import annotations

import socket

import pytest

from mlops_kit.talkcheck import Item, TalkCheck, check_setup, run_talk_check

pytestmark = pytest.mark.slow  # real training, notebooks or server processes


def test_setup_checks_pass_here_and_flag_a_busy_port(settings):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        items = check_setup(settings, {"API": port})

    by_check = {i.check: i for i in items}
    assert all(i.ok for i in items if not i.check.startswith("port")), [
        i for i in items if not i.ok
    ]
    assert not by_check[f"port {port} free (API)"].ok
    assert by_check["raw data sha256"].ok


def test_one_failure_means_no_go():
    report = TalkCheck([Item("api", "health", True, ""), Item("api", "version", False, "v1 != v2")])
    assert not report.go
    assert report.lines()[-1].startswith("NO-GO: 1 problem")


def test_full_check_with_the_training_notebook_is_a_go_and_leaves_the_workspace_alone(settings):
    report = run_talk_check(["02"])

    areas = {i.area for i in report.items}
    assert areas == {"setup", "notebooks", "api", "mlflow-ui"}
    failures = [i for i in report.items if not i.ok and not i.check.startswith("port")]
    assert not failures, failures
    assert not settings.workspace.exists()  # the check ran in a temporary workspace
