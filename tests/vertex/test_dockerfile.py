"""models/trainer: hadolint-clean, a TensorFlow GPU base pinned to our TensorFlow, our pins, non-root,
and the entrypoint the CustomJob spec runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vertex_edge.vertex.job import TASK_MODULE

DOCKERFILE = REPO / "models" / "trainer" / "Dockerfile"


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"\[.*\]", "", name).lower()] = version
    return out


@pytest.mark.slow  # runs a subprocess
def test_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_the_gpu_build_of_our_tensorflow() -> None:
    tf_version = pins(REPO / "requirements.txt")["tensorflow-cpu"]
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.M)
    assert froms == [f"tensorflow/tensorflow:{tf_version}-gpu"]


def test_trainer_requirements_use_the_repository_pins() -> None:
    ours = pins(REPO / "requirements.txt")
    trainer = pins(REPO / "models" / "trainer" / "requirements.txt")
    assert trainer and "tensorflow" not in trainer and "tensorflow-cpu" not in trainer  # the base image has it
    for name, version in trainer.items():
        assert ours.get(name) == version, f"{name}=={version} differs from requirements.txt ({ours.get(name)})"


def test_runs_as_non_root_the_task_module() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert f'ENTRYPOINT ["python", "-m", "{TASK_MODULE}"]' in text
    ignore = (REPO / "models" / "trainer" / "Dockerfile.dockerignore").read_text()
    assert "!vertex_edge/" in ignore and "!models/trainer/requirements.txt" in ignore


@pytest.mark.slow  # runs a subprocess
def test_the_trainer_imports_nothing_the_image_lacks() -> None:
    """The image has TensorFlow + models/trainer/requirements.txt: no Sacred, DVC, CLI or web stack."""
    script = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in {'sacred', 'dvc', 'typer', 'rich', 'click', 'matplotlib', 'pymongo', 'git',\n"
        "                                  'fastapi', 'uvicorn', 'httpx'}:\n"
        "            raise ImportError('the training image does not have ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import vertex_edge.vertex.task, vertex_edge.vertex.checkpoint, vertex_edge.training.run, vertex_edge.training.fit\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
