"""The serving half of ``benchmarks.monitoring``: the real prediction server
(``python -m vertex_edge.serving``), three of them side by side, and what capture costs them.

Capture is configured as in production, by the ``EDGE_CAPTURE_*`` variables; the capture's
counters are read from ``GET /capture``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.loadgen import HOST, free_port, rss_mb, run_load

REPO = Path(__file__).resolve().parents[1]


def start(model_dir: Path, log: Path, *, capture_uri: Path | None = None) -> tuple[Any, int]:
    """``python -m vertex_edge.serving`` on a free port, capturing to ``capture_uri`` (None: off)."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "EDGE_"))}
    env.update(
        {"AIP_STORAGE_URI": str(model_dir), "AIP_HTTP_PORT": str(port), "EDGE_HOST": HOST, "PYTHONPATH": str(REPO)}
    )
    if capture_uri is not None:
        env["EDGE_CAPTURE_URI"] = str(capture_uri)
    argv = [sys.executable, "-m", "vertex_edge.serving"]
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
        "plain model, no capture": (plain, None),
        "monitored model, no capture": (monitored, None),
        "monitored model, capture on": (monitored, work / "records"),
    }
    keys = ("c1_p50_ms", "c16_rps", "c16_p50_ms", "c16_cpu_us_per_request")
    results: dict[str, Any] = {name: {key: [] for key in keys} for name in configs}
    servers: dict[str, tuple[Any, int]] = {}
    try:
        for i, (name, (model, uri)) in enumerate(configs.items()):
            servers[name] = start(model, work / f"server-{i}.log", capture_uri=uri)
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
