"""The prediction server side by side with its peers, `mlflow models serve` (ONNX flavor) and
BentoML (defaults), and the in-process floor - one run, interleaved rounds. Run by hand, never
in CI: the first run installs each peer in its own cached virtual environment (PyPI).

    python -m benchmarks.peers                          # 3 rounds: edge, mlflow, bentoml + floor
    python -m benchmarks.peers --rounds 5 --baseline 0d18baa --variant ort2:EDGE_ORT_THREADS=2
    python -m benchmarks.peers --install-only

Every server serves the same ``model.onnx`` (``--model-dir``, default ``models/fashion-mnist``;
its probabilities output only, as the peers would return every output)
on 127.0.0.1 and gets byte-identical requests (``{"instances": [...]}``, Fashion-MNIST test
images as 28x28 lists of integers) from the same load generator (``benchmarks.loadgen.run_load``)
in a separate process. Each round starts every server afresh, one at a time, in a rotated
order (cold start: spawn to the first correct answer), then runs each phase on every server back
to back - single-image requests at concurrency 1 and 16 (req/s, p50, p99), 64-image requests at
concurrency 4 (images/s) - so that a busy neighbour on a shared machine weighs on all of them
alike. It records the peak RSS of each server's process tree and, once, the installed size of
its environment; every answer's class is checked against the in-process model. The floor is
measured in each phase just before the servers: ONNX Runtime in this process with the server's
session options, fed by the server's own micro-batcher (16 single-image submitters; 4 submitters
of 64 images) and, for concurrency 1, one image per call.

Prints medians over the rounds and per-round ratios; figures go to
``benchmarks/results/peers.json``. Only 127.0.0.1 is contacted (besides PyPI while installing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.loadgen import HOST, REPO, batched_floor, free_port, plain_model_dir, run_load, sample_images
from benchmarks.peer_servers import (
    CACHE,
    START_TIMEOUT_S,
    Env,
    RssSampler,
    Server,
    bentoml_server,
    edge_server,
    environments,
    mlflow_server,
    stop_tree,
    tree_cpu_s,
)

RESULTS = REPO / "benchmarks" / "results" / "peers.json"


def classes_of(body: bytes) -> list[int]:
    """Predicted class ids from any of the three answer formats."""
    data = json.loads(body)
    if isinstance(data, dict):
        data = data.get("predictions", data)
    if isinstance(data, dict):  # {"output name": [[...]]}
        (data,) = data.values()
    if data and isinstance(data[0], dict):
        return [int(p["class_id"]) for p in data]
    return [int(i) for i in np.argmax(np.asarray(data, dtype=np.float64), axis=1)]


def wrong_classes(answers: list[tuple[int, bytes]], expected: list[list[int]]) -> int:
    return sum(sum(a != b for a, b in zip(classes_of(body), expected[i], strict=True)) for i, body in answers)


def cold_start(
    server: Server, port: int, body: bytes, expected: list[int], log_path: Path
) -> tuple[subprocess.Popen, float]:
    """Start the server; seconds from spawn to the first correct answer."""
    import http.client

    started = time.perf_counter()
    proc = server.start(port, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {proc.returncode}; see {log_path}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("POST", server.path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = response.read()
            conn.close()
            if response.status == 200 and classes_of(answer) == expected:
                return proc, time.perf_counter() - started
            if response.status == 200:
                raise RuntimeError(f"{server.name} answered wrong classes at start: {answer[:200]!r}")
        except (ConnectionError, OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    stop_tree(proc)
    raise RuntimeError(f"{server.name} gave no correct answer within {START_TIMEOUT_S:.0f} s; see {log_path}")


@dataclass
class Load:
    singles: list[bytes]
    singles_expected: list[list[int]]
    batches: list[bytes]
    batches_expected: list[list[int]]
    c1: int
    c16: int
    b64: int


PHASES = ("c1", "c16", "b64")


@dataclass
class Running:
    server: Server
    port: int
    proc: subprocess.Popen
    sampler: RssSampler
    out: dict[str, Any]


def start_measured(server: Server, load: Load, work: Path) -> Running:
    """Start ``server`` (its cold start measured), sample its RSS, warm it up."""
    port = free_port()
    proc, cold = cold_start(server, port, load.singles[0], load.singles_expected[0], work / f"{server.name}.log")
    sampler = RssSampler(proc.pid)
    sampler.start()
    running = Running(server, port, proc, sampler, {"cold_start_s": cold, "wrong_classes": 0, "errors": 0})
    try:
        run_load(port, server.path, load.singles, 4, 300, expect=b"")
        run_load(port, server.path, load.batches, 2, 10, expect=b"")
    except BaseException:
        stop_measured(running)
        raise
    return running


def run_phase(running: Running, phase: str, load: Load) -> dict[str, Any]:
    bodies, expected, conc, count = {
        "c1": (load.singles, load.singles_expected, 1, load.c1),
        "c16": (load.singles, load.singles_expected, 16, load.c16),
        "b64": (load.batches, load.batches_expected, 4, load.b64),
    }[phase]
    cpu_before = tree_cpu_s(running.proc.pid)
    r = run_load(running.port, running.server.path, bodies, conc, count, keep_answers=True, expect=b"")
    # CPU seconds of the server's process tree per request: less swayed by a busy neighbour than req/s
    r["cpu_ms_per_request"] = (tree_cpu_s(running.proc.pid) - cpu_before) * 1e3 / max(1, r["requests"])
    running.out["wrong_classes"] += wrong_classes(r.pop("answers"), expected)
    running.out["errors"] += r["errors"]
    if not r["errors"]:
        r.pop("error_samples", None)
    if phase == "b64":
        r["images_per_s"] = r["rps"] * 64
    running.out[phase] = r
    return r


def stop_measured(running: Running) -> dict[str, Any]:
    running.out["peak_rss_mb"] = running.sampler.stop()
    stop_tree(running.proc)
    return running.out


# --------------------------------------------------------------------------- report


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


FIGURES = [
    ("c1 req/s", lambda r: r["c1"]["rps"], "{:,.0f}"),
    ("c1 p50 ms", lambda r: r["c1"]["p50_ms"], "{:.2f}"),
    ("c1 p99 ms", lambda r: r["c1"]["p99_ms"], "{:.2f}"),
    ("c16 req/s", lambda r: r["c16"]["rps"], "{:,.0f}"),
    ("c16 p50 ms", lambda r: r["c16"]["p50_ms"], "{:.2f}"),
    ("c16 p99 ms", lambda r: r["c16"]["p99_ms"], "{:.2f}"),
    ("c16 server CPU ms per request", lambda r: r["c16"]["cpu_ms_per_request"], "{:.3f}"),
    ("64-image c4 images/s", lambda r: r["b64"]["images_per_s"], "{:,.0f}"),
    ("64-image c4 p50 ms", lambda r: r["b64"]["p50_ms"], "{:.1f}"),
    ("64-image server CPU ms per image", lambda r: r["b64"]["cpu_ms_per_request"] / 64, "{:.3f}"),
    ("cold start s", lambda r: r["cold_start_s"], "{:.2f}"),
    ("peak RSS MB (tree)", lambda r: r["peak_rss_mb"], "{:.0f}"),
    ("wrong classes", lambda r: r["wrong_classes"], "{:.0f}"),
    ("errors", lambda r: r["errors"], "{:.0f}"),
]


def report(
    rounds: list[dict[str, Any]],
    names: list[str],
    sizes: dict[str, float],
    versions: dict[str, Any],
    floors_of: dict[str, tuple[int, int, int]],
) -> str:
    lines = []
    header = "| figure (median of rounds) | " + " | ".join(names) + " |"
    lines += [header, "|---" * (len(names) + 1) + "|"]
    for label, get, fmt in FIGURES:
        cells = []
        for name in names:
            vals = [get(r["servers"][name]) for r in rounds if name in r["servers"]]
            cells.append(fmt.format(_med(vals)) if vals else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| installed size MB | " + " | ".join(f"{sizes.get(n, float('nan')):,.0f}" for n in names) + " |")
    lines.append("")
    keys = sorted({tuple(k) for r in rounds for k in r.get("floors", {})})
    for key in keys:
        fl = [r["floors"][key] for r in rounds if key in r.get("floors", {})]
        lines.append(
            f"floor, {_floor_name(key)} (in-process, the server's session options and "
            f"micro-batcher), median: one image per call {_med([f['single_call_p50_ms'] for f in fl]):.3f} ms; "
            f"16 single-image submitters {_med([f['c16_images_per_s'] for f in fl]):,.0f} images/s; "
            f"4 submitters of 64 images {_med([f['b64_images_per_s'] for f in fl]):,.0f} images/s"
        )
    # per-round ratios
    lines.append("")
    edge = names[0] if names[0].startswith("edge") else ""
    peers = [n for n in names if n in ("mlflow", "bentoml")]
    for i, r in enumerate(rounds, 1):
        s = r["servers"]
        parts = [f"round {i} (load {r['loadavg']})"]
        for name in names:
            key = floors_of.get(name)
            if key and name in s and key in r.get("floors", {}):
                f = r["floors"][key]
                parts.append(
                    f"{name} / floor: c16 {s[name]['c16']['rps'] / f['c16_images_per_s']:.2f}, "
                    f"64-image {s[name]['b64']['images_per_s'] / f['b64_images_per_s']:.2f}"
                )
        for other in names[1:]:
            if other in s and edge in s:
                a, b = s[edge], s[other]
                parts.append(
                    f"{edge}/{other}: c16 {a['c16']['rps'] / b['c16']['rps']:.2f}x, "
                    f"c1 p50 {a['c1']['p50_ms'] / b['c1']['p50_ms']:.2f}x, "
                    f"64-image {a['b64']['images_per_s'] / b['b64']['images_per_s']:.2f}x, "
                    f"cold {a['cold_start_s'] / b['cold_start_s']:.2f}x, RSS {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x"
                )
        if peers and edge in s:
            best = max((p for p in peers if p in s), key=lambda p: s[p]["b64"]["images_per_s"], default=None)
            if best:
                parts.append(
                    f"64-image vs best peer ({best}) {s[edge]['b64']['images_per_s'] / s[best]['b64']['images_per_s']:.2f}x"
                )
        lines.append("; ".join(parts))
    lines.append("")
    lines.append("versions: " + json.dumps(versions))
    return "\n".join(lines)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "fashion-mnist")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default="edge,mlflow,bentoml", help="comma-separated, from edge, mlflow, bentoml")
    parser.add_argument("--baseline", help="also run the prediction server of this git commit (as edge@REF)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="also run the prediction server with these EDGE_* settings (e.g. ort2:EDGE_ORT_THREADS=2)",
    )
    parser.add_argument("--c1-requests", type=int, default=1500)
    parser.add_argument("--c16-requests", type=int, default=6000)
    parser.add_argument("--b64-requests", type=int, default=200)
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument(
        "--here", action="store_true", help="run the prediction servers with this interpreter (no cached venv)"
    )
    parser.add_argument("--install-only", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the servers on the way out, as on Ctrl-C

    envs = environments(here=args.here)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    for name in wanted:
        if name not in envs:
            parser.error(f"unknown server {name!r}")
        envs[name].ensure()
    if "edge" not in wanted and (args.baseline or args.variant):
        envs["edge"].ensure()
    if args.install_only:
        return 0
    if not (args.model_dir / "model.onnx").is_file():
        parser.error(f"{args.model_dir}/model.onnx does not exist: train a model or pass --model-dir")

    work = Path(tempfile.mkdtemp(prefix="edge-peers-"))
    # the peers return every output of the model: all servers get the probabilities-only model
    # (what monitoring adds to the prediction server is measured by benchmarks.monitoring)
    model_dir = plain_model_dir(args.model_dir, work / "model")
    from vertex_edge.serving.model import default_threads, default_wide_threads
    from vertex_edge.serving.settings import ServerSettings

    defaults = (default_threads(), ServerSettings(storage_uri="-").max_batch, default_wide_threads())
    servers: dict[str, Server] = {}
    if "edge" in wanted:
        servers["edge"] = edge_server("edge", envs["edge"], model_dir, REPO, {}, defaults)
    for spec in args.variant:
        name, _, settings = spec.partition(":")
        overrides = dict(kv.split("=", 1) for kv in settings.split(",") if kv)
        servers[f"edge-{name}"] = edge_server(f"edge-{name}", envs["edge"], model_dir, REPO, overrides, defaults)
    if args.baseline:
        source = CACHE / f"source-{args.baseline}"
        if not source.exists():
            source.mkdir(parents=True)
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.baseline, "vertex_edge"], capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        old_defaults = _defaults_of(envs["edge"], source)
        servers[f"edge@{args.baseline}"] = edge_server(
            f"edge@{args.baseline}", envs["edge"], model_dir, source, {}, old_defaults
        )
    if "mlflow" in wanted:
        servers["mlflow"] = mlflow_server(envs["mlflow"], model_dir, work)
    if "bentoml" in wanted:
        servers["bentoml"] = bentoml_server(envs["bentoml"], model_dir, work)
    names = list(servers)

    # requests: 64 distinct single images, 4 distinct 64-image batches; classes from the in-process model
    from vertex_edge.serving.model import load_model_dir

    reference = load_model_dir(model_dir, threads=1)
    images = sample_images(320)
    singles = [json.dumps({"instances": [images[i].astype(int).tolist()]}).encode() for i in range(64)]
    batches = [
        json.dumps({"instances": images[64 * k : 64 * (k + 1)].astype(int).tolist()}).encode() for k in range(1, 5)
    ]
    singles_expected = [[int(np.argmax(reference.probabilities(images[i : i + 1])))] for i in range(64)]
    batches_expected = [
        [int(c) for c in np.argmax(reference.probabilities(images[64 * k : 64 * (k + 1)]), axis=1)] for k in range(1, 5)
    ]
    load = Load(
        singles, singles_expected, batches, batches_expected, args.c1_requests, args.c16_requests, args.b64_requests
    )

    versions = {name: envs[name].versions() for name in ("edge", "mlflow", "bentoml") if envs[name].python.exists()}
    sizes = {}
    for name, server in servers.items():
        sizes[name] = server.env.size_mb()
    print(f"machine: {_cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    model_bytes = (model_dir / "model.onnx").read_bytes()
    print(
        f"model: {args.model_dir}/model.onnx, its probabilities output only (sha256 "
        f"{hashlib.sha256(model_bytes).hexdigest()[:12]}, {len(model_bytes):,} bytes)"
    )
    print(f"versions: {json.dumps(versions)}", flush=True)

    floor_keys = [] if args.no_floor else sorted({srv.floor for srv in servers.values() if srv.floor})
    rounds: list[dict[str, Any]] = []
    try:
        for i in range(args.rounds):
            rounds.append(run_round(i, names, servers, load, work, model_dir, floor_keys))
            if args.json:  # after every round: an interrupted run keeps the rounds it finished
                save(args.json, rounds, sizes, versions)
    except KeyboardInterrupt:
        print(f"interrupted: {len(rounds)} round(s) finished", flush=True)
        if not rounds:
            return 130

    floors_of = {name: srv.floor for name, srv in servers.items() if srv.floor}
    text = report(rounds, names, sizes, versions, floors_of)
    print()
    print(text)
    if args.json:
        print(f"figures written to {args.json}")
    bad = any(r["servers"][n]["wrong_classes"] or r["servers"][n]["errors"] for r in rounds for n in r["servers"])
    failed = len(rounds) < args.rounds or any(name not in r["servers"] for r in rounds for name in names)
    if bad or failed:
        print(f"servers' logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad or failed else 0


def _defaults_of(edge: Env, source: Path) -> tuple[int, int, int]:
    """(ORT threads, max batch, threads for full batches or 0) that the prediction server at
    ``source`` defaults to (a server before the wide session has none)."""
    code = (
        "import vertex_edge.serving.model as m; from vertex_edge.serving.settings import ServerSettings; "
        "wide = getattr(m, 'default_wide_threads', lambda: 0)(); "
        "print(m.default_threads(), ServerSettings(storage_uri='-').max_batch, wide)"
    )
    env = {**os.environ, "PYTHONPATH": str(source)}
    out = subprocess.run([str(edge.python), "-c", code], capture_output=True, text=True, check=True, env=env, cwd=source)
    threads, batch, wide = out.stdout.split()
    return int(threads), int(batch), int(wide)


def _floor_name(key: tuple[int, int, int]) -> str:
    """(threads, max batch, wide threads or 0) as shown in the report."""
    wide = f", {key[2]} for one request's chunks" if key[2] else ""
    return f"{key[0]} ORT thread(s){wide}, max batch {key[1]}"


def save(path: Path, rounds: list[dict[str, Any]], sizes: dict[str, float], versions: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = [{**r, "floors": {_floor_name(k): v for k, v in r["floors"].items()}} for r in rounds]
    path.write_text(json.dumps({"rounds": plain, "sizes_mb": sizes, "versions": versions}, indent=2))


def run_round(
    i: int,
    names: list[str],
    servers: dict[str, Server],
    load: Load,
    work: Path,
    model_dir: Path,
    floor_keys: list[tuple[int, int, int]],
) -> dict[str, Any]:
    """One round: start every server (rotated order), then each phase on all of them."""
    order = names[i % len(names) :] + names[: i % len(names)]
    current: dict[str, Any] = {"loadavg": _loadavg(), "order": order, "servers": {}}
    current["floors"] = {key: {} for key in floor_keys}
    running: dict[str, Running] = {}
    try:
        for name in order:  # each cold start alone; the servers started before it are idle
            try:
                running[name] = start_measured(servers[name], load, work)
            except RuntimeError as exc:
                print(f"round {i + 1} {name}: FAILED {exc}", flush=True)
        for phase in PHASES:  # each phase on every server back to back, its floor just before
            for key in floor_keys:
                current["floors"][key].update(
                    batched_floor(model_dir, threads=key[0], max_batch=key[1], wide_threads=key[2], parts=(phase,))
                )
            for name in order:
                if name in running:
                    try:
                        run_phase(running[name], phase, load)
                    except RuntimeError as exc:
                        print(f"round {i + 1} {name} {phase}: FAILED {exc}", flush=True)
                        stop_measured(running.pop(name))
    finally:
        for name in list(running):
            current["servers"][name] = stop_measured(running.pop(name))
    for key, figures in current["floors"].items():
        shown = {k: round(v, 3) for k, v in figures.items()}
        print(f"round {i + 1} floor {_floor_name(key)}: {json.dumps(shown)}", flush=True)
    for name in order:
        r = current["servers"].get(name)
        if r is None or not all(p in r for p in PHASES):
            current["servers"].pop(name, None)
            continue
        print(
            f"round {i + 1} {name}: c1 {r['c1']['rps']:.0f} req/s p50 {r['c1']['p50_ms']:.2f} ms; "
            f"c16 {r['c16']['rps']:.0f} req/s p99 {r['c16']['p99_ms']:.1f} ms; "
            f"64-image {r['b64']['images_per_s']:.0f} images/s; cold {r['cold_start_s']:.2f} s; "
            f"RSS {r['peak_rss_mb']:.0f} MB; wrong {r['wrong_classes']}, errors {r['errors']}",
            flush=True,
        )
    current["loadavg_end"] = _loadavg()
    return current


if __name__ == "__main__":
    sys.exit(main())
