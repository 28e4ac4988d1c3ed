"""Pages people look at, opened in a real headless Chromium that can reach only this machine.

Debian's ``chromium`` driven by Playwright for Python (``executable_path``: Playwright's own
browser download needs the internet). Every request that is not to 127.0.0.1 is refused and
recorded, so a page that works here works offline on stage. Playwright is imported inside the
functions: importing the kit stays light.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

LOCAL_HOST = "127.0.0.1"
# Playwright adds --headless itself; no sandbox: the checks may run as root (CI does).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MISSING = "chromium is not installed: `make system-deps` installs it"


def chromium() -> str | None:
    """The system's Chromium executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class LocalPage:
    """A browser page, and every request it tried to send off this machine (all refused)."""

    page: Page
    refused: list[str] = field(default_factory=list)

    def only_local(self, route: Route) -> None:
        """Let requests to 127.0.0.1 through; refuse and record any other."""
        url = route.request.url
        if urlsplit(url).hostname == LOCAL_HOST:
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("internetdisconnected")


@contextmanager
def local_page(timeout: float = 60.0) -> Iterator[LocalPage]:
    """A page of headless Chromium (1280x900) that can reach only 127.0.0.1.

    `timeout`: seconds any one step (load, click, wait for text) may take before it fails.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise RuntimeError("playwright is not installed: `make install` installs it") from exc

    executable = chromium()
    if executable is None:
        raise RuntimeError(MISSING)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(timeout * 1000)
            local = LocalPage(page)
            page.route("**/*", local.only_local)
            yield local
        finally:
            browser.close()


def try_it_out(page: Page, path: str = "/predict") -> tuple[str, str]:
    """On an open /docs, expand POST `path`, click "Try it out", "Execute": the answer's code, body."""
    operation = page.locator(".opblock-post").filter(
        has=page.locator(f".opblock-summary-path[data-path='{path}']")
    )
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table .response")
    answer.scroll_into_view_if_needed()
    code = answer.locator(".response-col_status").inner_text().strip()
    body = answer.locator(".response-col_description pre").first.inner_text()
    return code, body


def redoc_heading(page: Page, api_url: str) -> str:
    """Open /redoc and return its first heading once ReDoc has rendered it."""
    page.goto(f"{api_url}/redoc")
    heading = page.locator("h1").first
    heading.wait_for()
    return heading.inner_text()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def docs_work(
    api_url: str, screenshot: Path | None = None, timeout: float = 60.0
) -> tuple[bool, str]:
    """Whether /docs renders offline and "Try it out" on POST /predict gets a prediction."""
    try:
        with local_page(timeout) as local:
            local.page.goto(f"{api_url}/docs")
            if local.refused:
                return False, f"/docs needs {local.refused[0]} (not on this machine)"
            code, body = try_it_out(local.page)
            if screenshot is not None:
                local.page.screenshot(path=screenshot)
    except Exception as exc:  # whatever went wrong, the answer is: /docs does not work
        return False, _first_line(exc)
    if code != "200" or '"predicted"' not in body:
        return False, f"Try it out: POST /predict answered {code}: {body[:80]}"
    return True, "renders offline; Try it out: POST /predict 200"


def lab_opens_notebook(
    lab_url: str, notebook: str, kernel: str = "mlops-kit", timeout: float = 90.0
) -> tuple[bool, str]:
    """Whether JupyterLab at `lab_url` (with its ?token=) opens `notebook` on `kernel`, idle."""
    parts = urlsplit(lab_url)
    url = f"{parts.scheme}://{parts.netloc}/lab/tree/{notebook}?{parts.query}"
    seen = "no kernel shown"
    try:
        with local_page(timeout) as local:
            local.page.goto(url)
            # The status bar's kernel item reads e.g. "Python (mlops-kit) | Idle".
            status = local.page.locator(".jp-StatusBar-TextItem[title^='Change kernel']")
            try:
                status.filter(has_text=re.compile(rf"{re.escape(kernel)}.*\| Idle")).wait_for()
            finally:
                if status.count():
                    seen = status.first.inner_text()
    except Exception as exc:  # whatever went wrong, the answer is: the notebook did not open
        return False, f"{notebook}: {seen}: {_first_line(exc)}"
    if local.refused:
        return False, f"JupyterLab needs {local.refused[0]} (not on this machine)"
    return True, f"{notebook}: {seen}"
