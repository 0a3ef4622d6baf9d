"""Browser fixtures: Debian's headless Chromium driven by Playwright (never a downloaded browser),
and the web app served by a real uvicorn on a loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.webapp.conftest import prediction_server, tiny_model_dir  # noqa: F401 - fixtures shared with tests/webapp
from tests.webapp.helpers import FakeClient, serve_in_thread
from vertex_edge.webapp.app import create_app
from vertex_edge.webapp.settings import WebappSettings

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("EDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@pytest.fixture(scope="module")  # module: Playwright's sync API holds an event loop while open
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = REPO / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient(class_id=7)


@pytest.fixture
def live_url(fake: FakeClient) -> Iterator[str]:
    """The web app on a real uvicorn, with a fake endpoint client (deterministic answers)."""
    with serve_in_thread(create_app(WebappSettings(), client=fake)) as url:
        yield url


class PageErrors:
    """Console errors and failed requests seen by a page (CSP violations show up here)."""

    def __init__(self, page: Any) -> None:
        self.messages: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.messages.append(msg.text))
        page.on("pageerror", lambda exc: self.messages.append(str(exc)))


def new_page(browser: Any, viewport: dict[str, int], **kwargs: Any) -> tuple[Any, Any, PageErrors]:
    context = browser.new_context(viewport=viewport, **kwargs)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return context, page, PageErrors(page)
