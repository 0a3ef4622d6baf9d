"""Experiments UI over a store of 1,000 runs: the runs API, and the table rendered in headless Chromium.

    .venv/bin/python -m benchmarks.dashboard [--runs 1000] [--requests 200] [--browser-runs 15]

Writes a Sacred file store of N runs shaped as the trainer writes them (a few RUNNING, a few
corrupt, params varied over six keys) and a local registry, then serves the UI
(``create_app`` under uvicorn) in its own process. Prints p50/p90/p99 of ``GET /api/runs`` (the
first, cold request apart), and in Chromium: navigation start to the table laid out (fetch
included), the render alone, and a re-sort. Targets: API p50 <= 100 ms; table <= 300 ms.
Writes ``benchmarks/results/dashboard.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.webapp import CHROMIUM, REPO, start, summary
from tests.dashboard.conftest import add_version
from tests.dashboard.runs_fixture import T0, params, write_run
from tests.webapp.helpers import free_port, stop, wait_http
from vertex_edge.registry import LocalRegistry


def build_store(folder: Path, registry_root: Path, n: int) -> None:
    rng = random.Random(14)
    now = datetime.now(UTC)
    registry = LocalRegistry(registry_root, "fashion-mnist")
    for i in range(1, n + 1):
        config = params(
            learning_rate=rng.choice([0.0005, 0.001, 0.002, 0.004]), batch_size=rng.choice([32, 64, 128]),
            epochs=rng.choice([10, 15, 20]), **{"augment.shift": rng.choice([0, 1, 2]), "model.dense": rng.choice([128, 256]),
                                               "model.dropout": rng.choice([0.2, 0.25, 0.3])},
        )  # fmt: skip
        if i % 250 == 0:
            write_run(
                folder, i, status="RUNNING", config=config, epochs=5, start=now - timedelta(minutes=3), heartbeat=now
            )
        elif i % 97 == 0:
            write_run(folder, i, status="FAILED", config=config, epochs=2)
        else:
            write_run(folder, i, config=config, epochs=config["epochs"], quality=rng.uniform(0.9, 1.0),
                      experiment=f"exp-{i}" if i % 3 else None, start=T0 + timedelta(minutes=7 * i))  # fmt: skip
        if i % 211 == 0:
            (folder / str(i) / "run.json").write_text('{"status": "RUNNING", "start_t')  # caught half-written
        if i % 20 == 0 and i % 250:
            add_version(registry, str(i // 20), run_id=str(i), sha256=f"{i:064x}")


def serve(store: Path, registry: Path, port: int) -> None:
    """The UI over ``store`` (runs in the child process)."""
    import uvicorn

    from vertex_edge.dashboard.app import create_app
    from vertex_edge.dashboard.lineage import LocalLineage
    from vertex_edge.dashboard.service import RunsService, StoreInfo
    from vertex_edge.tracking.runs import FileExperimentStore

    service = RunsService(FileExperimentStore(store), StoreInfo(f"Sacred file store {store}", "local"),
                          LocalLineage(LocalRegistry(registry, "fashion-mnist")))  # fmt: skip
    uvicorn.run(create_app(service), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def bench_api(base: str, requests: int) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=60) as client:
        t0 = time.perf_counter()
        first = client.get("/api/runs")
        cold = (time.perf_counter() - t0) * 1000
        first.raise_for_status()
        times = []
        for _ in range(requests + 5):
            t0 = time.perf_counter()
            client.get("/api/runs").raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    return {
        "runs": len(first.json()["runs"]),
        "bytes": len(first.content),
        "cold_ms": round(cold, 1),
        **summary(times[5:]),
    }


def cpu_ms(pids: list[int]) -> dict[int, float]:
    """CPU time (user + system) each process has used so far, in ms."""
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = (t.user + t.system) * 1000
        except psutil.Error:
            continue
    return out


def work_pids(server_pid: int) -> list[int]:
    """The UI server and every Chromium process (not Playwright's driver: measurement overhead)."""
    children = psutil.Process(os.getpid()).children(recursive=True)
    return [server_pid] + [p.pid for p in children if "chrom" in p.name().lower()]


TRACED = ("ParseHTML", "EvaluateScript", "UpdateLayoutTree", "Layout", "PrePaint", "Paint")


def main_thread_cpu(trace: dict[str, Any]) -> dict[str, float]:
    """CPU time (``tdur``: not the time the thread waited for a core) of the page's renderer main
    thread in a trace: its top-level tasks in all, and the work named in TRACED."""
    events = trace["traceEvents"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    parsed = {(e["pid"], e["tid"]) for e in events if e.get("name") == "ParseHTML"}
    main = next(k for k, v in names.items() if v == "CrRendererMain" and k in parsed)
    out = dict.fromkeys(("tasks", *TRACED), 0.0)
    for e in events:
        if (e.get("pid"), e.get("tid")) == main and e.get("ph") == "X":
            key = "tasks" if e.get("name") == "RunTask" else e.get("name")
            if key in out:
                out[key] += e.get("tdur", 0) / 1000
    return out


def bench_traced(browser: Any, base: str, runs: int, server_pid: int) -> dict[str, Any]:
    """Reloads of the table, traced: CPU time of the renderer's main thread and of the server.
    Unlike wall time, these do not grow when other processes keep the cores busy."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(base + "/")
    page.wait_for_selector("#runs[aria-busy=false]", timeout=30_000)
    cpu: dict[str, list[float]] = {"server": []}
    for _ in range(runs):
        browser.start_tracing(page=page, categories=["devtools.timeline", "disabled-by-default-devtools.timeline"])
        before = cpu_ms([server_pid])
        page.reload()
        page.wait_for_selector("#runs[aria-busy=false]", timeout=30_000)
        after = cpu_ms([server_pid])
        trace = json.loads(browser.stop_tracing())
        for key, value in main_thread_cpu(trace).items():
            cpu.setdefault(key, []).append(value)
        cpu["server"].append(after.get(server_pid, 0.0) - before.get(server_pid, 0.0))
    page.close()
    return {key: round(statistics.median(values), 1) for key, values in cpu.items()}


def bench_browser(base: str, runs: int, server_pid: int) -> dict[str, Any] | str:
    if not Path(CHROMIUM).exists():
        return f"skipped: {CHROMIUM} is missing"
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_ARGS

    loaded, render, resort, response, dcl, all_rows, cpu = [], [], [], [], [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for i in range(runs + 2):
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            before = cpu_ms(work_pids(server_pid))
            page.goto(base + "/")
            page.wait_for_selector("#runs[aria-busy=false]", timeout=30_000)
            after = cpu_ms(work_pids(server_pid))
            used = sum(v - before.get(pid, 0.0) for pid, v in after.items())
            mark = page.evaluate("performance.getEntriesByName('runs-table-rendered')[0].startTime")
            nav = page.evaluate(
                "(({responseEnd, domContentLoadedEventStart}) => [responseEnd, domContentLoadedEventStart])(performance.getEntriesByType('navigation')[0])"
            )
            rows = int(page.get_attribute("#runs", "data-rows") or 0)
            own = float(page.get_attribute("#runs", "data-render-ms") or 0)
            dom_rows = page.locator("#runs tbody tr").count()
            t0 = time.perf_counter()
            page.click("th[data-key=test_accuracy]")
            resorted = (time.perf_counter() - t0) * 1000
            page.click("button[data-more=all]")
            all_rows.append(float(page.get_attribute("#runs", "data-render-ms") or 0))
            if i >= 2:
                loaded.append(mark)
                cpu.append(used)
                response.append(nav[0])
                dcl.append(nav[1])
                render.append(own)
                resort.append(resorted)
            page.close()
        traced = bench_traced(browser, base, max(5, runs // 2), server_pid)
        browser.close()
    return {
        "rows": rows,
        "dom_rows": dom_rows,
        "navigation_to_table": summary(loaded),
        "cpu_per_page_load": summary(cpu),
        "reload_cpu_median_ms": traced,
        "page_received": summary(response),
        "dom_content_loaded": summary(dcl),
        "render_only": summary(render),
        "click_to_resorted": summary(resort),
        "show_all_1000_render": summary(all_rows[2:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--browser-runs", type=int, default=15)
    parser.add_argument("--serve", nargs=3, metavar=("STORE", "REGISTRY", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), int(args.serve[2]))
        return

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        store, registry = Path(tmp) / "experiments", Path(tmp) / "registry"
        t0 = time.perf_counter()
        build_store(store, registry, args.runs)
        built = time.perf_counter() - t0
        port = free_port()
        argv = [sys.executable, "-m", "benchmarks.dashboard", "--serve", str(store), str(registry), str(port)]
        proc = start(argv, dict(os.environ), Path(tmp) / "ui.log")
        load_before = os.getloadavg()
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
            base = f"http://127.0.0.1:{port}"
            results: dict[str, Any] = {
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "load_average_before": [round(x, 2) for x in load_before],
                "store": f"{args.runs} runs (written in {built:.1f} s)",
                "api": bench_api(base, args.requests),
                "browser": bench_browser(base, args.browser_runs, proc.pid),
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
        finally:
            stop(proc)

    out = REPO / "benchmarks" / "results" / "dashboard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    api, browser = results["api"], results["browser"]
    print(f"experiments UI benchmark - {results['machine']}; {results['store']}; load {results['load_average_before']}")
    print(f"  GET /api/runs   cold {api['cold_ms']} ms; warm p50 {api['p50_ms']} ms  p90 {api['p90_ms']}  p99 {api['p99_ms']}  "
          f"({api['runs']} runs, {api['bytes'] // 1024} KiB)")  # fmt: skip
    if isinstance(browser, str):
        print(f"  browser         {browser}")
    else:
        for key in (
            "navigation_to_table",
            "page_received",
            "dom_content_loaded",
            "render_only",
            "click_to_resorted",
            "show_all_1000_render",
            "cpu_per_page_load",
        ):
            r = browser[key]
            print(f"  {key:19} p50 {r['p50_ms']:7.1f} ms  p90 {r['p90_ms']:7.1f}  p99 {r['p99_ms']:7.1f}  n={r['n']}")
        t = browser["reload_cpu_median_ms"]
        print(
            f"  reload, CPU (median): renderer main thread {t['tasks']} ms (script {t['EvaluateScript']}, style "
            f"{t['UpdateLayoutTree']}, layout {t['Layout']}, paint {t['PrePaint'] + t['Paint']:.1f}, HTML {t['ParseHTML']}); "
            f"server {t['server']} ms"
        )
        nav = browser["navigation_to_table"]["p50_ms"]
        print(
            f"  target table <= 300 ms: {'met' if nav <= 300 else 'NOT met'} ({nav} ms, navigation start to the table laid out)"
        )
    print(f"  target API p50 <= 100 ms: {'met' if api['p50_ms'] <= 100 else 'NOT met'} ({api['p50_ms']} ms)")
    print(f"  load average after: {results['load_average_after']}; written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
