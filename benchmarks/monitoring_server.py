"""The serving half of ``benchmarks.monitoring``: the real prediction server with the monitoring
hooks applied, three servers side by side, and what capture costs them.

``python -m benchmarks.monitoring_server`` is the server process: ``vertex_edge.serving`` after
:func:`install` - the wiring proposed for ``vertex_edge/serving`` (the model's monitor output
packed with the probabilities, ``ood`` and ``request_id`` in each prediction, capture offered on
the request path, the capture's counters at ``GET /capture``), capture configured by the
``EDGE_CAPTURE_*`` variables.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.serving import HOST, _free_port, rss_mb, run_load
from vertex_edge.monitoring.capture import Capture, CaptureSettings
from vertex_edge.monitoring.layout import ModelMonitor

REPO = Path(__file__).resolve().parents[1]


def install(capture: Capture | None, patch: Any = setattr) -> None:
    """Apply the proposed serving wiring to ``vertex_edge.serving`` in this process (``patch``:
    ``setattr``, or pytest's ``monkeypatch.setattr`` to undo it after a test)."""
    from vertex_edge.serving import app as server_app
    from vertex_edge.serving.model import LoadedModel

    @dataclasses.dataclass(frozen=True)
    class MonitoredModel(LoadedModel):
        monitor: ModelMonitor | None = None

        def predict(self, batch: np.ndarray) -> np.ndarray:
            assert self.monitor is not None
            return self.monitor.pack(self.session.run(list(self.monitor.output_names), {self.input_name: batch}))

        def warm_up(self, sizes: Any) -> None:
            for n in sizes:
                out = self.predict(np.zeros((n, 28, 28), dtype=np.float32))
                assert out.shape[0] == n and np.isfinite(out).all()

    original_load = server_app.load_model

    def load_model(uri: str, **kwargs: Any) -> LoadedModel:
        model = original_load(uri, **kwargs)
        monitor = ModelMonitor.from_session(model.session, version=model.version, labels=model.labels)
        fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
        return MonitoredModel(**fields, monitor=monitor)

    def predictions(packed: np.ndarray, model: Any) -> dict[str, Any]:
        monitor: ModelMonitor = model.monitor
        request_id = None
        if capture is not None:
            request_id = capture.request_id()
            capture.offer(request_id, monitor, packed)
        classes = monitor.classes
        out = []
        for k, row in zip(packed[:, :classes].argmax(axis=1).tolist(), packed, strict=True):
            item = {
                "label": model.labels[k],
                "class_id": k,
                "probabilities": row[:classes],
                **monitor.prediction_fields(row),
            }
            if request_id is not None:
                item["request_id"] = request_id
            out.append(item)
        return {"predictions": out, "model_version": model.version}

    original_create = server_app.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        from fastapi.responses import JSONResponse

        app = original_create(*args, **kwargs)
        app.add_api_route("/capture", lambda: JSONResponse(capture.stats() if capture else {"enabled": False}))
        return app

    patch(server_app, "load_model", load_model)
    patch(server_app, "_predictions", predictions)
    patch(server_app, "create_app", create_app)


def harness_main() -> int:
    """The server process: ``vertex_edge.serving`` with :func:`install` (capture per EDGE_CAPTURE_*)."""
    from vertex_edge.serving.__main__ import serve
    from vertex_edge.serving.settings import ServerSettings

    settings = CaptureSettings.from_env(os.environ)
    capture = Capture.from_settings(settings) if settings.enabled else None
    install(capture)
    if capture is not None:
        capture.start()
    try:
        return serve(ServerSettings.from_env(os.environ))
    finally:
        if capture is not None:
            capture.stop()


def start(model_dir: Path, log: Path, *, harness: bool, capture_uri: Path | None = None) -> tuple[Any, int]:
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "EDGE_"))}
    env.update(
        {"AIP_STORAGE_URI": str(model_dir), "AIP_HTTP_PORT": str(port), "EDGE_HOST": HOST, "PYTHONPATH": str(REPO)}
    )
    if capture_uri is not None:
        env["EDGE_CAPTURE_URI"] = str(capture_uri)
    argv = (
        [sys.executable, "-m", "benchmarks.monitoring_server"]
        if harness
        else [sys.executable, "-m", "vertex_edge.serving"]
    )
    proc = subprocess.Popen(argv, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)  # noqa: SIM115
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: see {log}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server not healthy within 120 s: see {log}")


def cpu_s(pid: int) -> float:
    """CPU seconds the process has used (all its threads): the server's own cost, unlike wall time
    barely moved by other jobs on a shared machine."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def serving_figures(
    plain: Path, monitored: Path, test: np.ndarray, work: Path, rounds: int, requests: int
) -> dict[str, Any]:
    import httpx

    body = json.dumps({"instances": [test[0].astype(int).tolist()]}).encode()
    configs = {
        "plain model, no capture": (plain, False, None),
        "monitored model, no capture": (monitored, True, None),
        "monitored model, capture on": (monitored, True, work / "records"),
    }
    keys = ("c1_p50_ms", "c16_rps", "c16_p50_ms", "c16_cpu_us_per_request")
    results: dict[str, Any] = {name: {key: [] for key in keys} for name in configs}
    servers: dict[str, tuple[Any, int]] = {}
    try:
        for i, (name, (model, harness, uri)) in enumerate(configs.items()):
            servers[name] = start(model, work / f"server-{i}.log", harness=harness, capture_uri=uri)
        for _, port in servers.values():
            run_load(port, "/predict", body, 8, 500)  # warm-up
        order = list(servers)
        for r in range(rounds):
            for name in order[r % 3 :] + order[: r % 3]:  # rotate who goes first in each round
                proc, port = servers[name]
                c1 = run_load(port, "/predict", body, 1, 500)
                before = cpu_s(proc.pid)
                c16 = run_load(port, "/predict", body, 16, 2000)
                spent = cpu_s(proc.pid) - before
                results[name]["c1_p50_ms"].append(c1["p50_ms"])
                results[name]["c16_rps"].append(c16["rps"])
                results[name]["c16_p50_ms"].append(c16["p50_ms"])
                results[name]["c16_cpu_us_per_request"].append(spent / max(c16["requests"], 1) * 1e6)
        for name in configs:
            for key in keys:
                results[name][key + "_median"] = statistics.median(results[name][key])
        results["paired"] = {
            f"{b} / {a}": {key: statistics.median(y / x for x, y in zip(results[a][key], results[b][key], strict=True))
                           for key in keys}
            for a, b in ((order[0], order[1]), (order[1], order[2]), (order[0], order[2]))
        }  # fmt: skip
        proc, port = servers["monitored model, capture on"]
        rss, errors = [rss_mb(proc.pid)], 0
        for _ in range(10):
            errors += run_load(port, "/predict", body, 16, requests // 10)["errors"]
            rss.append(rss_mb(proc.pid))
        time.sleep(2.5)  # one flush interval and more
        stats = httpx.get(f"http://{HOST}:{port}/capture", timeout=5).json()
        lines = sum(len(p.read_bytes().splitlines()) for p in (work / "records").rglob("*.jsonl"))
        results["load_run"] = {
            "requests": requests,
            "errors": errors,
            "rss_mb": rss,
            "capture": stats,
            "records_on_disk": lines,
        }
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    return results


if __name__ == "__main__":
    sys.exit(harness_main())
