"""The experiments UI in real headless Chromium: the runs table (sort, filter, status, changed
params, select and compare), a run page (curves, confusion matrix, reproduce), the comparison,
a corrupt run, and a running run whose page and row update while it trains. Nothing is fetched
from outside the app.

Screenshots go to ``test-artifacts/`` (git-ignored)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import DESKTOP, PHONE, new_page
from tests.dashboard.conftest import make_registry
from tests.dashboard.runs_fixture import demo_store, params, write_run
from tests.webapp.helpers import serve_in_thread
from vertex_edge.dashboard.app import create_app
from vertex_edge.dashboard.lineage import LocalLineage
from vertex_edge.dashboard.service import RunsService, StoreInfo
from vertex_edge.tracking.runs import FileExperimentStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]
EIGHT = params(epochs=8)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    folder = tmp_path / "experiments"
    demo_store(folder, now=datetime.now(UTC))
    return folder


@pytest.fixture
def ui(store: Path, tmp_path: Path) -> Iterator[str]:
    service = RunsService(
        FileExperimentStore(store), StoreInfo(f"Sacred file store {store}", "local"),
        LocalLineage(make_registry(tmp_path / "registry")),
    )  # fmt: skip
    with serve_in_thread(create_app(service, refresh_ms=300)) as url:
        yield url


class Offline:
    """Aborts and records every request that leaves the app (a CDN would show up here)."""

    def __init__(self, page: Any, base: str) -> None:
        self.outside: list[str] = []

        def route(r: Any) -> None:
            if r.request.url.startswith(base):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)


def open_page(
    browser: Any, url: str, path: str, viewport: dict[str, int] = DESKTOP, **kw: Any
) -> tuple[Any, Any, Any, Offline]:
    context, page, errors = new_page(browser, viewport, **kw)
    offline = Offline(page, url)
    page.goto(url + path)
    return context, page, errors, offline


def wait_until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` until it is true (wait_for_function evaluates strings, which the CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not _evaluate(page, expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(50)


def _evaluate(page: Any, expression: str) -> Any:
    try:
        return page.evaluate(expression)
    except PlaywrightError:  # the page is reloading: try again
        return False


def rows(page: Any) -> list[str]:
    return page.eval_on_selector_all("#runs tbody tr[data-id]", "trs => trs.map(t => t.dataset.id)")


def headers(page: Any) -> list[str]:
    return page.eval_on_selector_all("#runs thead th", "ths => ths.map(t => t.dataset.key)")


def test_runs_table_sorts_filters_and_compares(browser, ui: str, artifacts: Path) -> None:
    context, page, errors, offline = open_page(browser, ui, "/")
    try:
        page.wait_for_selector("#runs[aria-busy=false] tbody tr[data-id]")
        assert rows(page) == ["8", "7", "6", "5", "4", "3", "2", "1"]  # newest first
        statuses = page.eval_on_selector_all("#runs tbody tr", "trs => trs.map(t => t.dataset.status)")
        assert statuses == ["COMPLETED", "CORRUPT", "DEAD", "RUNNING", "FAILED", "COMPLETED", "COMPLETED", "COMPLETED"]
        assert "running · 3/8" in page.text_content("tr[data-id='5']")
        assert "v2 · 100 %" in page.text_content("tr[data-id='2']")
        params = [h for h in headers(page) if h.startswith("p:")]
        assert params == ["p:augment.shift", "p:batch_size", "p:epochs", "p:learning_rate"]  # changed only
        page.screenshot(path=str(artifacts / "dashboard-runs.png"), full_page=True)

        page.uncheck("#changed-only")
        assert len([h for h in headers(page) if h.startswith("p:")]) == 14
        page.check("#changed-only")

        page.click("th[data-key=test_accuracy]")  # best first
        assert rows(page)[:3] == ["2", "1", "7"] and rows(page)[-1] in ("4", "5", "6")
        assert page.get_attribute("th[data-key=test_accuracy]", "aria-sort") == "descending"

        page.fill("#filter", "learning_rate<0.002")
        wait_until(page, "document.querySelectorAll('#runs tbody tr[data-id]').length === 1")
        assert rows(page) == ["2"]
        page.fill("#filter", "test_accuracy>=0.92 shift")
        wait_until(page, "document.querySelectorAll('#runs tbody tr[data-id]').length === 4")
        assert "q=test_accuracy%3E%3D0.92+shift" in page.url  # the view is in the URL
        page.fill("#filter", "")
        page.click(".chip[data-status=DEAD]")
        assert rows(page) == ["6"]
        page.click(".chip[data-status=all]")

        assert page.is_disabled("#compare")
        for run_id in ("1", "2", "3"):
            page.check(f"input[data-id='{run_id}']")
        assert page.text_content("#compare") == "Compare 3 runs"
        page.click("#compare")
        page.wait_for_url("**/compare?ids=1,2,3")
        page.wait_for_selector("[data-testid=compare-page]")
        assert errors.messages == [] and offline.outside == []
    finally:
        context.close()


def test_run_page_shows_curves_confusion_matrix_and_how_to_reproduce(browser, ui: str, artifacts: Path) -> None:
    context, page, errors, offline = open_page(browser, ui, "/runs/2")
    try:
        page.wait_for_selector("#charts .uplot canvas")
        assert page.eval_on_selector_all("#charts figure", "fs => fs.map(f => f.dataset.chart)") == ["Loss", "Accuracy"]
        legend = page.eval_on_selector_all("#charts .u-legend .u-label", "ls => ls.map(l => l.textContent)")
        assert legend == ["epoch", "loss", "val_loss", "epoch", "accuracy", "val_accuracy"]
        size = page.eval_on_selector("[data-testid=confusion]", "img => [img.complete, img.naturalWidth > 0]")
        assert size == [True, True]
        assert page.text_content("[data-testid=test-accuracy]").strip() == "93.29 %"
        assert "passed" in page.text_content("[data-testid=gate]")
        assert "v2 · 100 %" in page.text_content("[data-testid=registry]")
        assert page.text_content("[data-testid=sha256]") == f"{2:064x}"
        assert "dvc exp run" in page.text_content("[data-testid=reproduce]")
        assert page.locator("[data-testid=per-class] tbody tr").count() == 10
        page.screenshot(path=str(artifacts / "dashboard-run.png"), full_page=True)
        assert errors.messages == [] and offline.outside == []
    finally:
        context.close()

    context, page, errors, _ = open_page(browser, ui, "/runs/2", PHONE, device_scale_factor=2, is_mobile=True)
    try:
        page.wait_for_selector("#charts .uplot canvas")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(artifacts / "dashboard-run-phone.png"), full_page=True)
        assert errors.messages == []
    finally:
        context.close()


def test_compare_overlays_curves_and_highlights_param_differences(browser, ui: str, artifacts: Path) -> None:
    context, page, errors, offline = open_page(browser, ui, "/compare?ids=1,2,3")
    try:
        page.wait_for_selector("#charts .uplot canvas")
        labels = page.eval_on_selector_all(
            "#charts figure:first-child .u-legend .u-label", "ls => ls.map(l => l.textContent)"
        )
        assert labels[1:] == [
            "run 1 loss",
            "run 1 val_loss",
            "run 2 loss",
            "run 2 val_loss",
            "run 3 loss",
            "run 3 val_loss",
        ]
        visible = page.eval_on_selector_all(
            ".params-cmp tbody tr", "trs => trs.filter(t => t.offsetParent).map(t => t.querySelector('th').textContent)"
        )
        assert visible == ["augment.shift", "batch_size", "epochs", "learning_rate"]
        page.uncheck("#only-diff")
        assert page.locator(".params-cmp tbody tr:visible").count() == 14
        deltas = page.eval_on_selector_all(
            "[data-testid=delta]", "ds => ds.map(d => [d.textContent.trim(), d.className])"
        )
        assert ["+0.0099", "delta better"] in deltas and ["-0.0517", "delta worse"] in deltas
        assert page.locator(".cm-row img").count() == 3
        page.screenshot(path=str(artifacts / "dashboard-compare.png"), full_page=True)
        assert errors.messages == [] and offline.outside == []
    finally:
        context.close()


def test_a_corrupt_run_shows_as_such_and_breaks_nothing(browser, ui: str, store: Path, artifacts: Path) -> None:
    (store / "9").mkdir()
    (store / "9" / "run.json").write_bytes(b"\x00\xff not json")
    context, page, errors, _ = open_page(browser, ui, "/")
    try:
        page.wait_for_selector("#runs tbody tr[data-id='9']")
        assert page.text_content("tr[data-id='9'] .status") == "corrupt"
        assert page.get_attribute("tr[data-id='7'] .warn-mark", "title").startswith("run.json is unreadable")
        page.click("tr[data-id='7'] a")
        page.wait_for_selector("[data-testid=problems]")
        assert "run.json is unreadable" in page.text_content("[data-testid=problems]")
        assert page.text_content("h1 [data-testid=status]") == "corrupt"
        page.screenshot(path=str(artifacts / "dashboard-corrupt-run.png"), full_page=True)
        page.goto(ui + "/runs/9")
        assert page.text_content("h1 [data-testid=status]") == "corrupt"
        assert errors.messages == []
    finally:
        context.close()


def test_a_running_run_updates_while_it_trains_then_finishes(browser, ui: str, store: Path, artifacts: Path) -> None:
    start = datetime.now(UTC) - timedelta(minutes=2)
    context, page, errors, _ = open_page(browser, ui, "/runs/5")
    try:
        page.wait_for_selector("[data-testid=live]")
        assert page.text_content("#epoch") == "3"
        assert page.locator("#charts .uplot").count() == 2
        write_run(
            store,
            5,
            status="RUNNING",
            config=EIGHT,
            epochs=5,
            start=start,
            heartbeat=datetime.now(UTC),
            experiment="running-exp",
        )
        wait_until(page, "document.getElementById('epoch').textContent === '5'")
        assert "epoch 5/8" in page.text_content("#output")
        assert page.locator("#charts .uplot").count() == 2  # redrawn, not piled up
        page.screenshot(path=str(artifacts / "dashboard-running-run.png"), full_page=True)

        table_ctx, table, _, _ = open_page(browser, ui, "/")
        try:
            table.wait_for_selector("tr[data-id='5']")
            assert "running · 5/" in table.text_content("tr[data-id='5']")
            assert "live" in table.text_content("#live")
            write_run(store, 5, status="RUNNING", config=EIGHT, epochs=6, start=start, heartbeat=datetime.now(UTC))
            wait_until(table, "document.querySelector(\"tr[data-id='5']\").textContent.includes('6/')")
        finally:
            table_ctx.close()

        write_run(
            store, 5, status="COMPLETED", config=EIGHT, epochs=6, start=start, experiment="running-exp"
        )  # it finishes
        wait_until(page, "document.querySelector('h1 [data-testid=status]')?.textContent === 'completed'")
        page.wait_for_selector("[data-testid=confusion]")
        assert page.locator("[data-testid=live]").count() == 0
        assert errors.messages == []
    finally:
        context.close()


def test_a_long_table_shows_a_hundred_rows_then_more(browser, tmp_path: Path) -> None:
    store = tmp_path / "many"
    for i in range(1, 131):
        write_run(store, i, config=params(learning_rate=0.001 * (1 + i % 4)), evaluated=False)
    service = RunsService(FileExperimentStore(store), StoreInfo("Sacred file store (many)", "local"))
    with serve_in_thread(create_app(service)) as url:
        context, page, errors, _ = open_page(browser, url, "/")
        try:
            page.wait_for_selector("#runs[aria-busy=false]")
            assert len(rows(page)) == 100 and rows(page)[0] == "130"
            assert "Showing 100 of 130 runs" in page.text_content("[data-testid=more]")
            page.click("th[data-key=id]")  # oldest first: sorted over all 130, not the 100 shown
            assert rows(page)[0] == "1"
            page.click("button[data-more=all]")
            assert len(rows(page)) == 130 and page.is_hidden("[data-testid=more]")
            assert errors.messages == []
        finally:
            context.close()
