"""Prediction server benchmark: the real server process on 127.0.0.1, a load generator in
separate processes, and the in-process ONNX Runtime call as the floor - in one run.

    python -m benchmarks.serving                      # models/fashion-mnist, else a same-shape CNN
    python -m benchmarks.serving --model-dir DIR --requests 10000    # figures also in benchmarks/results/serving.json

Measures: single-instance latency p50/p99 at concurrency 1; throughput at concurrency 1, 8, 16,
32; 64-instance requests (images/s); server RSS before/during/after a load run of N requests at
concurrency 32 (errors counted). ``--hostile``: a well-behaved client's p50/p99 beside each
abusive client of tests/hostile, and the peak RSS under 32 concurrent worst-case requests. Bounded: every phase has a request count and a time limit,
and only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.loadgen import (
    HOST,
    REPO,
    batched_floor,
    floor,
    free_port,
    rss_mb,
    run_load,
    sample_images,
    start_server,
    synthetic_cnn,
)


def hostile_figures(port: int, pid: int, requests: int = 600) -> dict[str, Any]:
    """Issue 13's figures: p99 of a well-behaved client (one image as numbers, concurrency 2)
    alone and beside each abusive client; the server's peak RSS under 32 concurrent worst-case
    requests, and its RSS after. Imports the hostile clients of tests/hostile."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.hostile import prediction_payloads as payloads
    from tests.hostile.prediction_clients import Abuse, SlowConnections, memory_mb

    url = f"http://{HOST}:{port}/predict"
    good = payloads.single_image()
    abusers = {
        "none": [],
        "amplifier x4 (512 one-megapixel PNGs)": [payloads.amplifier()] * 4,
        "pixel budget x2 (2 RGB 4096x4096 PNGs)": [payloads.at_pixel_budget("RGB")] * 2,
        "500 float images x2": [payloads.costly_numbers()] * 2,
    }
    out: dict[str, Any] = {"well_behaved": {}}
    for name, bodies in abusers.items():
        with Abuse(url, bodies) as abuse:
            time.sleep(1.0 if bodies else 0)
            r = run_load(port, "/predict", good, 2, requests)
        out["well_behaved"][name] = {**{k: r[k] for k in ("p50_ms", "p99_ms", "errors")}, "abusive": abuse.counts()}
        print(f"well-behaved client beside {name}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"errors {r['errors']}; abusive answers {abuse.counts()}")  # fmt: skip
    import threading

    slow = SlowConnections(port, 300)
    started = time.monotonic()
    left: list[int] = []
    trickling = threading.Thread(target=lambda: left.append(slow.trickle(60)))  # closed by 10 s / 30 s
    trickling.start()
    try:
        time.sleep(2.0)  # the slow connections are there before the measured client comes
        r = run_load(port, "/predict", good, 2, requests)
        trickling.join()
        open_after, closed_s = left[0], time.monotonic() - started
    finally:
        slow.close()
    out["well_behaved"]["300 slow connections"] = {k: r[k] for k in ("p50_ms", "p99_ms", "errors")}
    out["slow_connections"] = {"still_open": open_after, "all_closed_after_s": round(closed_s, 1)}
    print(f"well-behaved client beside 300 slow connections: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
          f"errors {r['errors']}; {open_after} still open, the rest closed within {closed_s:.0f} s")  # fmt: skip
    baseline = memory_mb(pid)["VmRSS"]
    for name, body in (("RGBA at the pixel budget", payloads.at_pixel_budget("RGBA")), ("500 float images", payloads.costly_numbers())):
        with ThreadPoolExecutor(32) as pool:
            codes = list(pool.map(lambda _, b=body: httpx.post(url, content=b, headers={"content-type": "application/json"}, timeout=120).status_code, range(32)))  # fmt: skip
        out[f"32 x {name}"] = {code: codes.count(code) for code in sorted(set(codes))}
    time.sleep(3)  # the heap is trimmed after a burst
    memory = memory_mb(pid)
    out["memory_mb"] = {"before": baseline, "peak": memory["VmHWM"], "after": memory["VmRSS"]}
    print(f"32 concurrent worst-case requests: answers {out['32 x RGBA at the pixel budget']} / "
          f"{out['32 x 500 float images']}; RSS {baseline:.0f} MB before, peak {memory['VmHWM']:.0f} MB, "
          f"{memory['VmRSS']:.0f} MB after")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "fashion-mnist")
    parser.add_argument("--requests", type=int, default=10_000, help="requests in the load run (max 100000)")
    parser.add_argument("--phase-requests", type=int, default=3000, help="requests per throughput phase")
    parser.add_argument("--load-processes", type=int, default=1, help="load generator processes")
    parser.add_argument("--ort-threads", type=int, default=0, help="EDGE_ORT_THREADS for the server (0: default)")
    parser.add_argument(
        "--ort-wide-threads", type=int, default=0, help="EDGE_ORT_WIDE_THREADS for the server (0: default)"
    )
    parser.add_argument("--batch-wait-ms", type=float, default=None, help="EDGE_BATCH_WAIT_MS for the server")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "serving.json", help="where the figures go"
    )
    parser.add_argument("--hostile", action="store_true", help="also the hostile-client figures (issue 13)")
    args = parser.parse_args(argv)
    requests = min(max(args.requests, 100), 100_000)
    phase = min(max(args.phase_requests, 100), 20_000)

    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    model_dir = args.model_dir
    model_kind = f"trained model ({model_dir})"
    if not (model_dir / "model.onnx").is_file():
        model_dir = synthetic_cnn(tmp / "model")
        model_kind = "synthetic CNN of the trained model's shape (no models/fashion-mnist)"
    images = sample_images(64)
    single = json.dumps({"instances": [images[0].astype(int).tolist()]}).encode()
    batch64 = json.dumps({"instances": [img.astype(int).tolist() for img in images]}).encode()

    print(f"model: {model_kind}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    results: dict[str, Any] = {"model": model_kind, "cpus": os.cpu_count()}
    results["floor"] = floor(model_dir, args.ort_threads)
    print(
        f"floor (in-process ONNX Runtime): single image {results['floor']['single_ms_p50']:.3f} ms, "
        f"batch of 512 {results['floor']['batch512_ms_per_image']:.4f} ms/image"
    )
    results["batched_floor"] = batched_floor(model_dir, threads=args.ort_threads)
    print(
        "floor as the server batches (in-process micro-batcher): 16 single-image submitters "
        f"{results['batched_floor']['c16_images_per_s']:.0f} images/s, 4 submitters of 64 images "
        f"{results['batched_floor']['b64_images_per_s']:.0f} images/s"
    )

    port = free_port()
    extra = {}
    if args.ort_threads:
        extra["EDGE_ORT_THREADS"] = str(args.ort_threads)
    if args.ort_wide_threads:
        extra["EDGE_ORT_WIDE_THREADS"] = str(args.ort_wide_threads)
    if args.batch_wait_ms is not None:
        extra["EDGE_BATCH_WAIT_MS"] = str(args.batch_wait_ms)
    log_path = tmp / "server.log"
    server = start_server(model_dir, port, log_path, extra)
    try:
        run_load(port, "/predict", single, 8, 500, args.load_processes)  # warm-up
        results["rss_after_warmup_mb"] = rss_mb(server.pid)
        lat = run_load(port, "/predict", single, 1, min(phase, 2000))
        results["latency_c1"] = lat
        print(f"single instance, concurrency 1: p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms")
        results["throughput"] = {}
        for conc in (1, 8, 16, 32):
            r = run_load(port, "/predict", single, conc, phase, args.load_processes)
            results["throughput"][str(conc)] = r
            ratio = (
                f", {r['rps'] / results['batched_floor']['c16_images_per_s']:.0%} of the floor" if conc == 16 else ""
            )
            print(
                f"throughput, concurrency {conc:>2}: {r['rps']:7.0f} req/s "
                f"(p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']}{ratio})"
            )
        results["batch64"] = {}
        for conc in (1, 4):
            r = run_load(port, "/predict", batch64, conc, max(100, phase // 10), args.load_processes)
            r["images_per_s"] = r["rps"] * 64
            results["batch64"][str(conc)] = r
            print(
                f"64-instance requests, concurrency {conc}: {r['images_per_s']:7.0f} images/s "
                f"({r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, errors {r['errors']})"
            )
        # the load run: N requests at concurrency 32, RSS sampled every tenth
        samples = [rss_mb(server.pid)]
        total = {"requests": 0, "errors": 0, "seconds": 0.0}
        chunk = requests // 10
        for _ in range(10):
            r = run_load(port, "/predict", single, 32, chunk, args.load_processes)
            total["requests"] += r["requests"]
            total["errors"] += r["errors"]
            total["seconds"] += r["seconds"]
            samples.append(rss_mb(server.pid))
        total["rps"] = total["requests"] / total["seconds"]
        results["load_run"] = {**total, "rss_mb": samples}
        print(
            f"load run: {total['requests']} requests at concurrency 32, {total['errors']} errors, "
            f"{total['rps']:.0f} req/s"
        )
        print(
            "server RSS (MB): after warm-up {:.0f}; during the load run {}; after {:.0f}".format(
                results["rss_after_warmup_mb"], " ".join(f"{s:.0f}" for s in samples), samples[-1]
            )
        )
        if args.hostile:
            results["hostile"] = hostile_figures(port, server.pid)
        log_lines = sum(1 for _ in open(log_path, "rb"))
        results["server_log_lines"] = log_lines
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"figures written to {args.json}")
    failed = results["load_run"]["errors"] or any(r["errors"] for r in results["throughput"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
