"""``dvc plots show`` / ``dvc plots diff`` with the offline HTML template (.dvc/plots/offline.html):
the page loads nothing from a CDN and draws this project's plots (the learning curves of two
revisions, the confusion heatmap, the confusion PNG) in headless Chromium with the network cut."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser.conftest import DESKTOP, new_page
from tests.conftest import git, tool_env
from tests.dashboard.runs_fixture import LABELS, confusion_png

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / ".dvc" / "plots" / "offline.html"


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def history(epochs: int, shift: float) -> str:
    rows = [
        f"{e},{1 - 0.1 * e + shift},{0.8 + 0.03 * e - shift},{1.05 - 0.1 * e + shift},{0.79 + 0.03 * e - shift}"
        for e in range(1, epochs + 1)
    ]
    return "epoch,loss,accuracy,val_loss,val_accuracy\n" + "\n".join(rows) + "\n"


@pytest.fixture
def plots_repo(tmp_path: Path) -> Path:
    """A DVC repo with the project's plot definitions (dvc.yaml's top-level plots and evaluate's)."""
    repo = tmp_path / "plots"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    dvc(repo, "init", "-q")
    project = yaml.safe_load((REPO / "dvc.yaml").read_text())
    pipeline = {
        "stages": {"evaluate": {"cmd": "true", "plots": project["stages"]["evaluate"]["plots"]}},
        "plots": project["plots"],
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    reports = repo / "reports"
    reports.mkdir()
    (reports / "train_history.csv").write_text(history(4, 0.0))
    pairs = [f"{LABELS[i % 10]},{LABELS[(i * 7) % 10 if i % 5 == 0 else i % 10]}" for i in range(200)]
    (reports / "confusion.csv").write_text("actual,predicted\n" + "\n".join(pairs) + "\n")
    (reports / "confusion_matrix.png").write_bytes(confusion_png())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    (reports / "train_history.csv").write_text(history(5, 0.02))  # the workspace: another experiment
    return repo


def render(browser: Any, html: Path, artifacts: Path, name: str) -> Any:
    context, page, errors = new_page(browser, DESKTOP)
    outside: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(html.as_uri())
    page.wait_for_selector("figure.dvc-plot svg")
    page.screenshot(path=str(artifacts / name), full_page=True)
    assert outside == [] and errors.messages == []
    return context, page


def test_plots_diff_renders_offline_with_the_template(browser, plots_repo: Path, artifacts: Path) -> None:
    out = plots_repo / "diff"
    dvc(plots_repo, "plots", "diff", "HEAD", "--html-template", str(TEMPLATE), "-o", str(out))
    html = (out / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "<script src" not in html  # ($schema URLs are names, never fetched)
    context, page = render(browser, out / "index.html", artifacts, "dvc-plots-diff-offline.png")
    try:
        titles = page.eval_on_selector_all("figure.dvc-plot h2", "hs => hs.map(h => h.textContent)")
        assert titles[:2] == ["accuracy", "loss"]
        series = page.evaluate(
            "[...document.querySelector('figure.dvc-plot').querySelectorAll('g.series')].map(g => g.dataset.rev + ' ' + g.dataset.field)"
        )
        assert sorted(series) == ["HEAD accuracy", "HEAD val_accuracy", "workspace accuracy", "workspace val_accuracy"]
        heatmaps = [t for t in titles if t.startswith("reports/confusion.csv")]
        assert len(heatmaps) == 2  # one per revision
        assert page.locator("figure.dvc-plot svg rect").count() >= 2 * 10 * 10 - 20
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    finally:
        context.close()


def test_plots_show_uses_the_template_from_the_dvc_config(browser, plots_repo: Path, artifacts: Path) -> None:
    (plots_repo / ".dvc" / "plots").mkdir(exist_ok=True)
    shutil.copy(TEMPLATE, plots_repo / ".dvc" / "plots" / "offline.html")
    dvc(plots_repo, "config", "plots.html_template", "plots/offline.html")  # the line .dvc/config carries
    dvc(plots_repo, "plots", "show", "-o", "shown")
    assert "cdn.jsdelivr" not in (plots_repo / "shown" / "index.html").read_text()
    context, page = render(browser, plots_repo / "shown" / "index.html", artifacts, "dvc-plots-show-offline.png")
    try:
        assert page.locator("figure.dvc-plot path").count() == 4  # accuracy, val_accuracy, loss, val_loss
    finally:
        context.close()
