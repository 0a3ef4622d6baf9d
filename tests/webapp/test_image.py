"""services/webapp: the Dockerfile is hadolint-clean, and what the image holds is enough to run the
app - every vertex_edge module it imports is copied in, every library it imports is covered by the
image's pinned requirements (which match the repository's pins), and there is no TensorFlow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "services" / "webapp"


def _requirements(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint is not installed in this venv")
    proc = subprocess.run([str(hadolint), str(SERVICE / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_as_non_root_without_tensorflow() -> None:
    text = (SERVICE / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", text, re.M)
    assert "-slim" in text
    assert "tensorflow" not in text.lower()
    assert 'CMD ["python", "-m", "vertex_edge.webapp"]' in text


def test_image_requirements_are_the_repository_pins_without_tensorflow() -> None:
    image = _requirements(SERVICE / "requirements.txt")
    repo = _requirements(REPO / "requirements.txt")
    for name, version in image.items():
        assert repo.get(name) == version, f"{name}=={version} differs from requirements.txt ({repo.get(name)})"
    assert not {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnxruntime"} & set(image)


def _closure(requirements: list[str]) -> set[str]:
    """Installed distributions reachable from ``requirements`` (extras followed), normalised names."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(dep)
    return names


def _image_requirements() -> list[str]:
    lines = (SERVICE / "requirements.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


@pytest.mark.slow
def test_the_app_runs_with_only_what_the_image_installs() -> None:
    """Run the app in a subprocess where every library outside the image's requirements is
    blocked from importing (optional imports fall back, as they would in the image)."""
    from packaging.utils import canonicalize_name

    allowed = _closure(_image_requirements())
    blocked = sorted(
        top
        for top, dists in metadata.packages_distributions().items()
        if not {canonicalize_name(d) for d in dists} & allowed and not top.startswith("_")
    )
    assert "tensorflow" in blocked or "tensorflow" not in metadata.packages_distributions()
    script = r"""
import asyncio, importlib.abc, json, sys

BLOCKED = set(json.loads(sys.argv[1]))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the image)", name=name)
        return None

sys.meta_path.insert(0, Block())

import httpx
from vertex_edge.webapp.app import create_app
from vertex_edge.webapp.client import Prediction, VertexPredictionClient
import vertex_edge.webapp.__main__, vertex_edge.webapp.server, vertex_edge.webapp.logs
from vertex_edge.webapp.client import _aiplatform_endpoint
import google.cloud.aiplatform  # the vertex backend's SDK
from google.api_core import exceptions
import uvicorn, uvloop, httptools

class Fake:
    backend = "http"
    async def predict(self, image):
        return Prediction("Bag", 8, tuple([0.1] * 10), "v")
    async def aclose(self):
        pass

async def main():
    app = create_app(client=Fake())
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://app") as c:
        assert (await c.get("/")).status_code == 200
        files = {"file": ("a.png", open("vertex_edge/webapp/static/samples/8-bag.png", "rb").read(), "image/png")}
        assert (await c.post("/api/predict", files=files)).status_code == 200
        assert (await c.post("/api/predict", files={"file": ("a.txt", b"text", "text/plain")})).status_code == 400

asyncio.run(main())
print(json.dumps({n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(blocked)], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, "the app needs a library the image does not install:\n" + proc.stderr[-3000:]
    modules: dict[str, str | None] = json.loads(proc.stdout.strip().splitlines()[-1])
    copied = _copied_sources()
    for name, path in modules.items():
        if (name == "vertex_edge" or name.startswith("vertex_edge.")) and path:
            rel = Path(path).resolve().relative_to(REPO).as_posix()
            assert rel.startswith(copied), f"{name} ({rel}) is imported but not copied into the image"
    assert not any(n.split(".")[0] in ("tensorflow", "keras", "onnxruntime", "dvc", "sacred") for n in modules)


def _copied_sources() -> tuple[str, ...]:
    """The vertex_edge paths the web-app Dockerfile COPYs (folders end with '/')."""
    paths: list[str] = []
    text = (REPO / "services" / "webapp" / "Dockerfile").read_text().replace("\\\n", " ")  # continuation lines
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            for src in (w for w in words[1:-1] if not w.startswith("--") and w.startswith("vertex_edge")):
                paths.append(src if src.endswith(".py") else src.rstrip("/") + "/")
    return tuple(paths)
