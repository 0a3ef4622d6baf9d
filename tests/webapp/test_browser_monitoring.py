"""The monitoring parts of the page in real headless Chromium (Debian's, through the browser
fixtures of ``tests/browser``): an out-of-distribution answer's message, and "Was this right?"
writing a feedback record. Screenshots go to ``test-artifacts/`` (git-ignored)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import DESKTOP, PHONE, artifacts, browser, new_page  # noqa: F401 - fixtures
from tests.webapp.helpers import FakeClient, serve_in_thread
from vertex_edge.webapp.app import create_app
from vertex_edge.webapp.client import OodFlag
from vertex_edge.webapp.samples import SAMPLES_DIR
from vertex_edge.webapp.settings import WebappSettings

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "feedback"


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient(class_id=7)


@pytest.fixture
def live(fake: FakeClient, store: Path) -> Iterator[str]:
    """The web app on a real uvicorn with a fake endpoint and a feedback folder."""
    with serve_in_thread(create_app(WebappSettings(feedback_uri=str(store)), client=fake)) as url:
        yield url


def records(store: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(store.rglob("*.jsonl")) for line in path.read_text().splitlines()]


def font_px(page: Any, selector: str) -> float:
    return float(page.eval_on_selector(selector, "e => parseFloat(getComputedStyle(e).fontSize)"))


def test_an_out_of_distribution_answer_says_it_is_not_sure(browser, live: str, fake, artifacts: Path) -> None:  # noqa: F811
    fake.class_id, fake.ood = 8, OodFlag(score=14.2, flag=True)
    context, page, errors = new_page(browser, DESKTOP)
    try:
        page.goto(live)
        page.set_input_files("#file", str(SAMPLES_DIR / "7-sneaker.png"))
        page.wait_for_selector("[data-testid=ood]")
        assert page.text_content("[data-testid=ood]").strip() == "Not sure this is a clothing item"
        assert page.is_visible("[data-testid=ood]")
        assert page.text_content("[data-testid=label]").strip() == "Bag"  # the guess, still shown
        assert "Its best guess" in page.text_content(".guess")
        assert font_px(page, "[data-testid=ood]") > 1.4 * font_px(page, "[data-testid=label]")  # de-emphasised
        page.screenshot(path=str(artifacts / "webapp-ood.png"), full_page=True)
        assert errors.messages == []
    finally:
        context.close()


def test_was_this_right_records_the_label_picked_and_the_yes(  # noqa: F811 - the fixtures imported above
    browser, live: str, store: Path, artifacts: Path  # noqa: F811
) -> None:
    context, page, errors = new_page(browser, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        page.goto(live)
        assert "never stored" in page.text_content("[data-testid=privacy]")
        page.click("button.thumb[value='9-ankle-boot']")
        page.wait_for_selector("[data-testid=feedback]", state="visible")
        assert page.text_content(".feedback-question") == "Was this right?"
        page.select_option("[data-testid=feedback-label]", "Ankle boot")
        page.click("button[data-answer=pick]")
        page.wait_for_selector("form.feedback[data-state=done]")
        assert page.text_content("[data-testid=feedback-status]") == "Thank you: recorded as Ankle boot."
        page.locator("form.feedback").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "webapp-feedback.png"), full_page=True)
        first = page.get_attribute("form.feedback", "data-request-id")

        page.click("button.thumb[value='7-sneaker']")  # a new prediction, a new control
        page.wait_for_function(
            "id => { const f = document.querySelector('form.feedback'); return f && !f.hidden && f.dataset.requestId !== id; }",
            arg=first,
        )  # fmt: skip
        page.click("button[data-answer=yes]")
        page.wait_for_selector("form.feedback[data-state=done]")
        second = page.get_attribute("form.feedback", "data-request-id")
        assert errors.messages == []
    finally:
        context.close()
    answers = {(r["request_id"], r["label"], r["class_id"], r.get("predicted")) for r in records(store)}
    assert answers == {(first, "Ankle boot", 9, 7), (second, "Sneaker", 7, 7)}


def test_without_a_feedback_store_there_is_no_question(browser, fake) -> None:  # noqa: F811
    with serve_in_thread(create_app(WebappSettings(), client=fake)) as url:
        context, page, errors = new_page(browser, DESKTOP)
        try:
            page.goto(url)
            page.click("button.thumb[value='7-sneaker']")
            page.wait_for_selector("[data-testid=label]")
            assert page.locator("[data-testid=feedback]").count() == 0
            assert errors.messages == []
        finally:
            context.close()
