"""The web app in real headless Chromium: upload, pick a sample, drag and drop, the error path,
desktop and phone widths, without JavaScript, and against a real prediction server.

Screenshots go to ``test-artifacts/`` (git-ignored)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import DESKTOP, PHONE, new_page
from tests.serving.tiny_model import LABELS
from tests.webapp.helpers import MODEL_VERSION, serve_in_thread
from vertex_edge.errors import CloudError
from vertex_edge.webapp.app import create_app
from vertex_edge.webapp.samples import SAMPLES_DIR
from vertex_edge.webapp.settings import WebappSettings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SNEAKER = SAMPLES_DIR / "7-sneaker.png"


def assert_result(page: Any, label: str, version: str = MODEL_VERSION) -> None:
    page.wait_for_selector("[data-testid=label]")
    assert page.text_content("[data-testid=label]").strip() == label
    bars = page.locator("[data-testid=chart] li")
    assert bars.count() == 10
    assert page.locator("[data-testid=chart] li.top .bar-name").text_content() == label
    # the bars are drawn: the top one is wider than the others
    widths = [float(w) for w in page.eval_on_selector_all(".bar-fill", "els => els.map(e => e.getBBox().width)")]
    assert max(widths) == widths[LABELS.index(label)] > 0
    # the 28x28 image the model saw has loaded
    natural = page.eval_on_selector(
        "[data-testid=model-input]", "img => [img.complete, img.naturalWidth, img.naturalHeight]"
    )
    assert natural == [True, 28, 28]
    assert page.text_content("[data-testid=model-version]") == version


def no_horizontal_scroll(page: Any) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def real_errors(messages: list[str]) -> list[str]:
    """Console errors other than the 4xx/5xx status of a request the test made fail on purpose."""
    return [m for m in messages if "Failed to load resource" not in m]


def test_upload_a_sample_image_shows_label_and_chart_on_desktop(browser, live_url: str, artifacts: Path) -> None:
    context, page, errors = new_page(browser, DESKTOP)
    try:
        page.goto(live_url)
        assert page.title().startswith("What is this garment?")
        page.screenshot(path=str(artifacts / "webapp-desktop-start.png"), full_page=True)
        page.set_input_files("#file", str(SNEAKER))
        assert_result(page, "Sneaker")
        original = page.locator("img.original")
        assert original.is_visible()
        assert original.get_attribute("src").startswith("blob:")  # the upload itself, shown beside
        assert page.get_attribute("#result", "aria-busy") == "false"
        assert no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / "webapp-desktop-result.png"), full_page=True)
        assert errors.messages == []
    finally:
        context.close()


def test_pick_a_gallery_sample_on_a_phone(browser, live_url: str, fake, artifacts: Path) -> None:
    context, page, errors = new_page(browser, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        page.goto(live_url)
        assert no_horizontal_scroll(page)
        page.screenshot(path=str(artifacts / "webapp-phone-start.png"), full_page=True)
        page.click("button.thumb[value='7-sneaker']")
        assert_result(page, "Sneaker")
        assert "correct" in page.text_content(".confidence")
        assert no_horizontal_scroll(page)
        page.locator("#result").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "webapp-phone-result.png"), full_page=True)
        assert len(fake.calls) == 1
        assert errors.messages == []
    finally:
        context.close()


def test_drag_and_drop_an_image(browser, live_url: str) -> None:
    context, page, errors = new_page(browser, DESKTOP)
    try:
        page.goto(live_url)
        data = base64.b64encode(SNEAKER.read_bytes()).decode()
        transfer = page.evaluate_handle(
            """(b64) => {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
                return dt;
            }""",
            data,
        )
        page.dispatch_event("#drop", "dragenter", {"dataTransfer": transfer})
        assert "over" in page.get_attribute("#drop", "class")
        page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
        assert_result(page, "Sneaker")
        assert "over" not in page.get_attribute("#drop", "class")
        assert errors.messages == []
    finally:
        context.close()


def test_uploading_a_text_file_shows_an_error_and_the_page_recovers(
    browser, live_url: str, fake, artifacts: Path
) -> None:
    context, page, errors = new_page(browser, DESKTOP)
    try:
        page.goto(live_url)
        page.set_input_files(
            "#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture\n"}]
        )
        alert = page.wait_for_selector("[data-testid=error]")
        assert "not an image the model can read" in alert.text_content()
        assert alert.get_attribute("data-code") == "invalid_image"
        assert page.locator("[data-testid=label]").count() == 0
        page.screenshot(path=str(artifacts / "webapp-desktop-error.png"), full_page=True)
        assert fake.calls == []
        # a good image afterwards works
        page.set_input_files("#file", str(SNEAKER))
        assert_result(page, "Sneaker")
        assert page.locator("[data-testid=error]").count() == 0
        assert real_errors(errors.messages) == []
    finally:
        context.close()


def test_too_large_file_is_refused_in_the_page(browser, live_url: str, fake) -> None:
    context, page, errors = new_page(browser, PHONE)
    try:
        page.goto(live_url)
        big = b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024 + 10)
        page.set_input_files("#file", files=[{"name": "huge.png", "mimeType": "image/png", "buffer": big}])
        alert = page.wait_for_selector("[data-testid=error]")
        assert "too large" in alert.text_content() and "5 MB" in alert.text_content()
        assert fake.calls == []
        assert real_errors(errors.messages) == []
    finally:
        context.close()


def test_endpoint_outage_is_explained_in_the_page(browser, live_url: str, fake, artifacts: Path) -> None:
    fake.error = CloudError("The prediction endpoint cannot be reached right now.")
    context, page, errors = new_page(browser, PHONE, device_scale_factor=2)
    try:
        page.goto(live_url)
        page.click("button.thumb[value='0-t-shirt-top']")
        alert = page.wait_for_selector("[data-testid=error]")
        assert "The model could not answer" in alert.text_content()
        assert "cannot be reached" in alert.text_content()
        assert alert.get_attribute("data-code") == "endpoint_error"
        page.locator("#result").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "webapp-phone-endpoint-down.png"), full_page=True)
        assert real_errors(errors.messages) == []
    finally:
        context.close()


def test_the_page_works_without_javascript(browser, live_url: str) -> None:
    context, page, _ = new_page(browser, DESKTOP, java_script_enabled=False)
    try:
        page.goto(live_url)
        with page.expect_navigation():
            page.click("button.thumb[value='9-ankle-boot']")
        assert_result(page, "Sneaker")  # what the fake endpoint says
    finally:
        context.close()


@pytest.mark.integration
def test_predicts_in_the_browser_through_a_real_prediction_server(
    browser, prediction_server: str, artifacts: Path
) -> None:
    with serve_in_thread(create_app(WebappSettings(endpoint_url=prediction_server))) as url:
        context, page, errors = new_page(browser, DESKTOP)
        try:
            page.goto(url)
            page.set_input_files("#file", str(SAMPLES_DIR / "1-trouser.png"))
            page.wait_for_selector("[data-testid=label]")
            label = page.text_content("[data-testid=label]").strip()
            assert label in LABELS
            assert_result(page, label)
            page.screenshot(path=str(artifacts / "webapp-real-server.png"), full_page=True)
            assert errors.messages == []
        finally:
            context.close()
