"""Web app latency: the JSON API round trip, and upload-to-rendered-result in headless Chromium;
and the web app under load (issue 13): peak memory under 32 concurrent worst-case uploads, a
well-behaved client's p99 while an abusive client uploads, throughput at concurrency 16.

    .venv/bin/python -m benchmarks.webapp [--requests 300] [--browser-runs 30] [--model models/fashion-mnist]
    .venv/bin/python -m benchmarks.webapp --only load [--source /tmp/before]  # load figures only

Starts the real stack on loopback, each part in its own process: the prediction server
(``python -m vertex_edge.serving``) with the trained model if ``models/fashion-mnist`` has one,
else a tiny ONNX model; and the web app (``python -m vertex_edge.webapp``) calling it over HTTP.
The load figures run the web app in front of a fake endpoint (no model cost), under the Helm
chart's memory limit (a cgroup where one can be made); ``--source`` runs the web app of another
checkout (``git worktree add /tmp/before <commit>``) for a before/after comparison.
Prints p50/p90/p99 and writes ``benchmarks/results/webapp.json``. Target: API p50 <= 50 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests.webapp.helpers import build_tiny_model, free_port, stop, wait_http
from tests.webapp.hostile import (
    MB,
    WebappProcess,
    abusive_client,
    budget_image,
    burst,
    chart_memory_limit_mb,
    fake_endpoint,
    timed_uploads,
    webapp_process,
)
from vertex_edge.webapp.samples import SAMPLES_DIR

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("EDGE_CHROMIUM", "/usr/bin/chromium")


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50), 2),
        "p90_ms": round(pct(values, 90), 2),
        "p99_ms": round(pct(values, 99), 2),
        "mean_ms": round(statistics.fmean(values), 2),
    }


def photo_jpeg(size: tuple[int, int] = (3000, 4000)) -> bytes:
    """A phone-photo-sized JPEG of a sample garment (12 MP)."""
    image = Image.open(SAMPLES_DIR / "0-t-shirt-top.png").convert("RGB").resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)


def bench_api(base: str, data: bytes, name: str, requests: int, warmup: int = 20) -> dict[str, Any]:
    files = {"file": (name, data, "image/jpeg" if name.endswith(".jpg") else "image/png")}
    wall: list[float] = []
    server: dict[str, list[float]] = {"preprocess_ms": [], "endpoint_ms": []}
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(warmup + requests):
            t0 = time.perf_counter()
            resp = client.post("/api/predict", files=files)
            elapsed = (time.perf_counter() - t0) * 1000
            resp.raise_for_status()
            if i >= warmup:
                wall.append(elapsed)
                for key in server:
                    server[key].append(resp.json()["timings"][key])
    out = {"upload_bytes": len(data), **summary(wall)}
    out.update({f"server_{k}_p50": round(pct(v, 50), 2) for k, v in server.items()})
    return out


def bench_browser(base: str, runs: int) -> dict[str, Any] | str:
    if not Path(CHROMIUM).exists():
        return f"skipped: {CHROMIUM} is missing"
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_ARGS

    times: list[float] = []
    sample = str(SAMPLES_DIR / "7-sneaker.png")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base)
        done = (
            "() => { const r = document.getElementById('result'); const img = r.querySelector('[data-testid=model-input]');"
            " return r.dataset.state === 'done' && r.getAttribute('aria-busy') === 'false' && img && img.complete"
            " && r.querySelectorAll('.bar-fill').length === 10; }"
        )
        for i in range(runs + 3):
            page.evaluate("() => { document.getElementById('result').dataset.state = ''; }")
            t0 = time.perf_counter()
            page.set_input_files("#file", sample)
            page.wait_for_function(done, polling="raf")
            elapsed = (time.perf_counter() - t0) * 1000
            if i >= 3:
                times.append(elapsed)
        browser.close()
    return summary(times)


def bench_load(tmp: Path, source: Path, seconds: float = 10.0) -> dict[str, Any]:
    """The web app in front of the fake endpoint, under the chart's memory limit."""
    sample = (SAMPLES_DIR / "7-sneaker.png").read_bytes()
    limit = chart_memory_limit_mb()
    with fake_endpoint() as (_, url), webapp_process(
        url, tmp, limit_mb=limit, address_space_mb=limit + 512, env={"EDGE_WEBAPP_DEADLINE_S": "60"}, source=source
    ) as app:
        out: dict[str, Any] = {"memory_limit": f"{limit} MiB ({app.limit.how})", "baseline_rss_mb": round(app.memory_mb()["VmRSS"], 1)}
        throughput(app, sample, 16, 1.0)  # warm-up
        out["throughput_c16"] = throughput(app, sample, 16, seconds)  # first: the rest may kill an old app
        worst = budget_image("WEBP", pad_to=5 * MB - 4096)
        cpu, started = app.cpu_seconds(), time.perf_counter()
        codes = burst(app.url, worst, 32)
        out["worst_case_32"] = {
            "upload": f"{len(worst):,} bytes, WebP decoding to {8_388_608:,} pixels",
            "statuses": {str(c): codes.count(c) for c in sorted(set(codes))},
            "wall_s": round(time.perf_counter() - started, 2),
            "cpu_s": round(app.cpu_seconds() - cpu, 2),
            "peak_rss_mb": round(app.memory_mb()["VmHWM"], 1) if app.alive() else "killed",
            "cgroup_peak_mb": round(app.limit.peak_mb() or 0, 1) or None,
            "oom_kills": app.limit.oom_kills(),
        }
        time.sleep(2)
        out["worst_case_32"]["rss_after_2s_mb"] = round(app.memory_mb()["VmRSS"], 1) if app.alive() else None
        if not app.alive():
            return out
        with abusive_client(app.url, [budget_image("WEBP"), budget_image("PNG")], connections=8) as abusive:
            time.sleep(1.0)
            latencies, good = timed_uploads(app.url, sample, 100)
        out["p99_beside_abuser"] = {**summary([t * 1000 for t in latencies]), "errors": sum(c != 200 for c in good),
                                    "abusive_requests": len(abusive), "abusive_statuses": sorted(set(abusive))}  # fmt: skip
    return out


def throughput(app: WebappProcess, data: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    """Sample uploads from ``concurrency`` keep-alive clients for ``seconds``: requests per second,
    and the web app's CPU time per request (steadier than the rate on a shared machine)."""
    base = app.url
    from concurrent.futures import ThreadPoolExecutor

    files = {"file": ("s.png", data, "image/png")}
    stop_at = time.perf_counter() + seconds

    def client_loop(_: int) -> tuple[int, int]:
        ok = bad = 0
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.perf_counter() < stop_at:
                if client.post("/api/predict", files=files).status_code == 200:
                    ok += 1
                else:
                    bad += 1
        return ok, bad

    started, cpu = time.perf_counter(), app.cpu_seconds()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client_loop, range(concurrency)))
    wall, cpu = time.perf_counter() - started, app.cpu_seconds() - cpu
    ok = sum(r[0] for r in results)
    return {"concurrency": concurrency, "requests_per_s": round(ok / wall, 1),
            "cpu_ms_per_request": round(1000 * cpu / max(ok, 1), 2), "errors": sum(r[1] for r in results)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--browser-runs", type=int, default=30)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "fashion-mnist")
    parser.add_argument("--only", choices=["latency", "load"], help="run one part only")
    parser.add_argument("--source", type=Path, default=REPO, help="the checkout whose web app is loaded (--only load)")
    parser.add_argument("--load-seconds", type=float, default=10.0, help="length of the throughput run")
    args = parser.parse_args()
    if args.only == "load":
        with tempfile.TemporaryDirectory(prefix="bench-webapp-") as tmp:
            load = bench_load(Path(tmp), args.source.resolve(), args.load_seconds)
        print(json.dumps({"machine": machine(), "load": load}, indent=2))
        return

    with tempfile.TemporaryDirectory(prefix="bench-webapp-") as tmp:
        tmpdir = Path(tmp)
        model = args.model
        if (model / "model.onnx").exists() and (model / "model_card.json").exists():
            model_kind = f"trained model ({model})"
        else:
            model = build_tiny_model(tmpdir / "model")
            model_kind = "tiny ONNX model (no trained model in models/fashion-mnist)"
        server_port, web_port = free_port(), free_port()
        env = dict(os.environ, AIP_STORAGE_URI=str(model), AIP_HTTP_PORT=str(server_port), EDGE_OFFLINE="1")
        server = start([sys.executable, "-m", "vertex_edge.serving"], env, tmpdir / "server.log")
        web_env = dict(
            os.environ,
            EDGE_WEBAPP_PORT=str(web_port),
            EDGE_WEBAPP_ENDPOINT_URL=f"http://127.0.0.1:{server_port}/predict",
            EDGE_WEBAPP_BACKEND="http",
        )
        webapp = start([sys.executable, "-m", "vertex_edge.webapp"], web_env, tmpdir / "webapp.log")
        try:
            wait_http(f"http://127.0.0.1:{server_port}/health", proc=server)
            base = f"http://127.0.0.1:{web_port}"
            wait_http(f"{base}/healthz", proc=webapp)
            results: dict[str, Any] = {
                "machine": machine(),
                "model": model_kind,
                "api_sample_png": bench_api(base, (SAMPLES_DIR / "7-sneaker.png").read_bytes(), "s.png", args.requests),
                "api_12mp_jpeg": bench_api(base, photo_jpeg(), "photo.jpg", max(20, args.requests // 10), warmup=3),
                "browser_upload_to_result": bench_browser(base, args.browser_runs),
            }
            if args.only is None:
                results["load"] = bench_load(tmpdir, REPO, args.load_seconds)
        finally:
            stop(webapp)
            stop(server)

    out = REPO / "benchmarks" / "results" / "webapp.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"web app benchmark - {results['machine']}; {results['model']}")
    for key in ("api_sample_png", "api_12mp_jpeg", "browser_upload_to_result"):
        r = results[key]
        if isinstance(r, str):
            print(f"  {key:26} {r}")
            continue
        extra = f"  (server: preprocess p50 {r['server_preprocess_ms_p50']} ms, endpoint p50 {r['server_endpoint_ms_p50']} ms)" if "server_preprocess_ms_p50" in r else ""
        print(f"  {key:26} p50 {r['p50_ms']:7.1f} ms  p90 {r['p90_ms']:7.1f}  p99 {r['p99_ms']:7.1f}  n={r['n']}{extra}")
    p50 = results["api_sample_png"]["p50_ms"]
    print(f"  target API p50 <= 50 ms: {'met' if p50 <= 50 else 'NOT met'} ({p50} ms)")
    if "load" in results:
        print("  load:", json.dumps(results["load"], indent=2).replace("\n", "\n  "))
    print(f"  (written to {out.relative_to(REPO)})")


if __name__ == "__main__":
    main()
