"""/docs and /redoc in a real headless Chromium that can reach nothing but 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from mlops_kit.talk import browser

from .conftest import Server

pytestmark = pytest.mark.slow  # a trained registry, a uvicorn process and a browser


def test_docs_try_it_out_and_redoc_work_with_nothing_but_this_machine(
    offline_browser: None,
    workspace: Path,
    tmp_path: Path,
    start_api: Callable[..., AbstractContextManager[Server]],
) -> None:
    with (
        start_api(tmp_path / "api.log", MLOPS_KIT_WORKSPACE=str(workspace)) as api,
        browser.local_page() as local,
    ):
        local.page.goto(f"{api.url}/docs")
        code, body = browser.try_it_out(local.page)
        local.page.screenshot(path=tmp_path / "docs.png")
        shown = local.page.locator(".live-responses-table").inner_text()
        heading = browser.redoc_heading(local.page, api.url)
        local.page.screenshot(path=tmp_path / "redoc.png")
        assert local.refused == []  # nothing outside was even asked for
        local.page.evaluate("fetch('https://cdn.jsdelivr.net/npm/redoc@2').catch(() => null)")

    assert code == "200" and '"predicted"' in body
    assert '"predicted"' in shown and '"model_version": "1"' in shown
    assert heading.startswith("mlops-kit API")
    assert local.refused == ["https://cdn.jsdelivr.net/npm/redoc@2"]  # the guard does refuse
