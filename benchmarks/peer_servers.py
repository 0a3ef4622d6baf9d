"""The servers that ``benchmarks.peers`` compares, and how they are installed, started, measured
and stopped: the prediction server (this checkout, another commit, or this interpreter),
``mlflow models serve`` (ONNX flavor) and BentoML, each in its own cached virtual environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.loadgen import HOST, REPO

CACHE = Path(os.environ.get("EDGE_PEERS_CACHE", Path.home() / ".cache" / "vertex-edge-peers"))
START_TIMEOUT_S = 180.0


def _pin(name: str) -> str:
    """The version of ``name`` pinned in services/prediction/requirements.txt (peers get the same
    ONNX Runtime, so the comparison is about serving, not about the runtime)."""
    for line in (REPO / "services" / "prediction" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.lower().startswith(name + "=="):
            return line
    raise SystemExit(f"{name} is not pinned in services/prediction/requirements.txt")


# --------------------------------------------------------------------------- environments


@dataclass
class Env:
    """A cached virtual environment, made once from ``requirements``."""

    name: str
    requirements: list[str]
    packages: list[str]  # whose versions are reported

    @property
    def path(self) -> Path:
        digest = hashlib.sha256("\n".join(self.requirements).encode()).hexdigest()[:10]
        return CACHE / f"{self.name}-{digest}"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def ensure(self) -> None:
        marker = self.path / ".installed"
        if marker.is_file():
            return
        print(f"installing {self.name} into {self.path} (once): {' '.join(self.requirements)}", flush=True)
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True)
        pip = subprocess.run(
            [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", *self.requirements],
            capture_output=True,
            text=True,
            check=False,
        )
        (self.path / "pip-install.log").write_text(pip.stdout + pip.stderr)
        if pip.returncode != 0:
            raise SystemExit(f"pip could not install {self.name}: see {self.path / 'pip-install.log'}")
        marker.write_text("\n".join(self.requirements) + "\n")

    def versions(self) -> dict[str, str]:
        code = "import importlib.metadata as m, json, sys; print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
        out = subprocess.run([str(self.python), "-c", code, *self.packages], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def size_mb(self) -> float:
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                p = Path(root) / name
                if not p.is_symlink():
                    total += p.stat().st_size
        return total / 2**20


class CurrentEnv(Env):
    """This interpreter's environment (``--here``): the project's venv has the server's pins
    (tests/serving/test_container.py checks it), so nothing is installed; no installed size."""

    @property
    def path(self) -> Path:
        return Path(sys.prefix)

    @property
    def python(self) -> Path:
        return Path(sys.executable)

    def ensure(self) -> None:
        return None

    def size_mb(self) -> float:
        return float("nan")


def environments(*, here: bool = False) -> dict[str, Env]:
    ort = _pin("onnxruntime")
    edge_reqs = [
        line.split("#", 1)[0].strip()
        for line in (REPO / "services" / "prediction" / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    edge_packages = ["onnxruntime", "fastapi", "uvicorn", "orjson", "numpy"]
    return {
        "edge": (CurrentEnv if here else Env)("edge", edge_reqs, edge_packages),
        "mlflow": Env("mlflow", ["mlflow", "onnx", ort], ["mlflow", "onnxruntime", "numpy", "uvicorn", "fastapi"]),
        "bentoml": Env("bentoml", ["bentoml", ort], ["bentoml", "onnxruntime", "numpy"]),
    }


# --------------------------------------------------------------------------- servers

_MLFLOW_SAVE = """
import sys, numpy as np, onnx, mlflow.onnx
from mlflow.models import infer_signature
x = np.zeros((1, 28, 28), np.float32)
signature = infer_signature(x, np.full((1, 10), 0.1, np.float32))
mlflow.onnx.save_model(onnx.load(sys.argv[1]), sys.argv[2], signature=signature)
"""

_BENTO_SERVICE = '''"""BentoML with its defaults: one service, ONNX Runtime with default session options."""
import os

import bentoml
import numpy as np
import onnxruntime as ort


@bentoml.service
class FashionMNIST:
    def __init__(self) -> None:
        self.session = ort.InferenceSession(os.environ["EDGE_PEER_MODEL"], providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    @bentoml.api
    def predict(self, instances: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: instances.astype(np.float32)})[0]
'''


@dataclass
class Server:
    """How to start one server and where to send requests."""

    name: str
    env: Env
    argv: list[str]
    path: str
    cwd: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    floor: tuple[int, int, int] | None = None  # (ORT threads, max batch, wide threads or 0) of a prediction server

    def start(self, port: int, log_path: Path) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "EDGE_", "PYTHON"))}
        # as in an activated environment: mlflow runs "uvicorn" from the PATH
        env["PATH"] = f"{self.env.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.env.path)
        env.update({k: v.replace("{port}", str(port)) for k, v in self.extra_env.items()})
        argv = [a.replace("{port}", str(port)).replace("{python}", str(self.env.python)) for a in self.argv]
        log = open(log_path, "ab")  # noqa: SIM115 - closed when the process is stopped
        return subprocess.Popen(argv, cwd=self.cwd, env=env, stdout=log, stderr=log, start_new_session=True)


def edge_server(
    name: str, env: Env, model_dir: Path, source: Path, overrides: dict[str, str], defaults: tuple[int, int, int]
) -> Server:
    """The prediction server from ``source``; ``defaults``: its (ORT threads, max batch, threads
    for full batches) defaults."""
    extra = {"AIP_STORAGE_URI": str(model_dir), "AIP_HTTP_PORT": "{port}", "EDGE_HOST": HOST, "PYTHONPATH": str(source)}
    extra.update(overrides)
    threads = int(overrides.get("EDGE_ORT_THREADS") or 0) or defaults[0]
    wide = int(overrides.get("EDGE_ORT_WIDE_THREADS") or 0) or defaults[2]
    floor = (threads, int(overrides.get("EDGE_MAX_BATCH") or 0) or defaults[1], wide if wide > threads else 0)
    return Server(name, env, ["{python}", "-m", "vertex_edge.serving"], "/predict", source, extra, floor)


def mlflow_server(env: Env, model_dir: Path, work: Path) -> Server:
    target = work / "mlflow-model"
    if not target.exists():
        subprocess.run([str(env.python), "-c", _MLFLOW_SAVE, str(model_dir / "model.onnx"), str(target)], check=True)
    mlflow = env.path / "bin" / "mlflow"
    argv = [str(mlflow), "models", "serve", "-m", str(target), "-h", HOST, "-p", "{port}", "--env-manager", "local"]
    return Server("mlflow", env, argv, "/invocations", work, {"MLFLOW_TRACKING_URI": f"file://{work}/mlruns"})


def bentoml_server(env: Env, model_dir: Path, work: Path) -> Server:
    folder = work / "bento"
    folder.mkdir(exist_ok=True)
    (folder / "service.py").write_text(_BENTO_SERVICE)
    bentoml = env.path / "bin" / "bentoml"
    argv = [str(bentoml), "serve", "service:FashionMNIST", "--host", HOST, "--port", "{port}"]
    extra = {"EDGE_PEER_MODEL": str(model_dir / "model.onnx"), "BENTOML_HOME": str(work / "bentoml-home")}
    return Server("bentoml", env, argv, "/predict", folder, extra)


# --------------------------------------------------------------------------- measuring


def _tree_sum(pid: int, figure: Callable[[Any], float]) -> float:
    """``figure`` of ``pid`` and its live children, summed (processes that vanish meanwhile count 0)."""
    import psutil  # deferred: only the benchmarks that measure a process tree need it

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            total += figure(proc)
        except psutil.Error:
            pass
    return total


def tree_rss_mb(pid: int) -> float:
    return _tree_sum(pid, lambda proc: proc.memory_info().rss) / 2**20


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (live ones)."""
    return _tree_sum(pid, lambda proc: sum(proc.cpu_times()[:2]))


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak = pid, every_s, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self._stop_event.wait(self.every_s)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def stop_tree(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # the group may hold workers that outlived their parent
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
