"""Monitoring benchmarks: the OOD flag, false alarms and power of the drift checks, and what
monitoring costs the prediction server - figures for benchmarks/README.md.

    python -m benchmarks.monitoring [--model-dir DIR] [--data DIR] [ood drift costs serving]

* ``ood``: the share of Fashion-MNIST test images flagged (target <= 5 %) and of the non-clothing
  set flagged (target >= 90 %), per kind;
* ``drift``: windows of 500 unshifted test records flagged (target <= 5 % over >= 20 windows) and
  each simulator shift detected within one window of 500 (also at 20 % and 10 % of the window);
  records are made by the capture's own code (``build_records``) from the served model's output;
* ``costs``: CPU time in this process (other jobs on a shared machine barely move it) of the
  monitor output per model call (batch 1, 16, 64), of capture on the request path, and of the
  capture's writer thread per record;
* ``serving``: three real server processes side by side (:mod:`benchmarks.monitoring_server`) -
  the model as exported without capture, the monitored model without capture, and with capture
  to local files - in alternating rounds: p50 latency at concurrency 1, throughput, p50 and server
  CPU per request at concurrency 16; then 10,000 requests with capture on, sampling the server's
  RSS and the dropped-record count.

The model needs no reference profile: one is made from the training images' validation split
(the seed and split of the model card), exactly as training will.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.loadgen import plain_model_dir
from benchmarks.monitoring_server import serving_figures
from vertex_edge.artifact import MODEL_FILES, ONNX_FILE, ModelArtifact, digests
from vertex_edge.data import idx
from vertex_edge.monitoring.capture import Capture, CaptureSettings, build_records
from vertex_edge.monitoring.drift import compare
from vertex_edge.monitoring.layout import ModelMonitor
from vertex_edge.monitoring.nonclothing import nonclothing_set
from vertex_edge.monitoring.prepare import prepare_model
from vertex_edge.monitoring.profile import PROFILE_FILE, ReferenceProfile, run_model
from vertex_edge.monitoring.records import to_window
from vertex_edge.monitoring.simulate import SHIFTS, shifted
from vertex_edge.monitoring.thresholds import load_monitor_params
from vertex_edge.serving.model import open_session

REPO = Path(__file__).resolve().parents[1]
PARTS = ("ood", "drift", "costs", "serving")


# --------------------------------------------------------------------------- data and model


def load_idx(folder: Path, prefix: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    images = idx.read_images(folder / f"{prefix}-images-idx3-ubyte.gz", count=count, shape=(28, 28))
    labels = idx.read_labels(folder / f"{prefix}-labels-idx1-ubyte.gz", count=count, num_classes=10)
    return images.astype(np.float32), labels.astype(np.int64)


def monitored_model(model_dir: Path, data: Path, work: Path, fpr: float) -> tuple[Path, float]:
    """A copy of ``model_dir`` (a model without its monitor outputs: :func:`plain_model_dir`)
    prepared for monitoring as training does it (profile from the validation split)."""
    from vertex_edge.data.prepare import Split
    from vertex_edge.params import TrainParams
    from vertex_edge.training.fit import split_train_val

    target = work / "monitored"
    shutil.copytree(model_dir, target)
    card = ModelArtifact.read(target).card
    params = TrainParams.model_validate(card.params)
    images, labels = load_idx(data, "train", 60_000)
    _, val = split_train_val(Split(images, labels), params)
    assert val is not None
    started = time.perf_counter()
    prepare_model(target, val.images.astype(np.float32), val.labels, class_names=card.labels, fpr=fpr)
    seconds = time.perf_counter() - started
    # what training does next: the card lists the final files (the version keeps its old name here)
    artifact = ModelArtifact.read(target)
    artifact.write_card(artifact.card.with_updates(artifacts=digests(target, MODEL_FILES)))
    return target, seconds


# --------------------------------------------------------------------------- costs, in process


class _NullSink:
    def write(self, lines: bytes, when: float) -> None:
        self.bytes = len(lines)

    def close(self) -> None:
        return None


def _cpu_us(fn: Any, repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - started) / repeat * 1e6


def cost_figures(plain: Path, monitored: Path, test: np.ndarray, rounds: int = 25) -> dict[str, Any]:
    """CPU time (this thread; other jobs barely move it) of the monitor output per model call, of
    capture on the request path, and of the writer thread per record."""
    sessions = {p: open_session(p / ONNX_FILE, 1, source=str(p)) for p in (plain, monitored)}  # the server's options
    monitor = ModelMonitor.from_session(sessions[monitored], version="bench", labels=tuple(str(i) for i in range(10)))
    model_call: dict[str, Any] = {}
    for n in (1, 16, 64):
        batch = {"image": test[:n]}
        times: dict[str, list[float]] = {"plain": [], "monitored": []}
        for _ in range(rounds):
            times["plain"].append(_cpu_us(lambda b=batch: sessions[plain].run(None, b), 20))
            times["monitored"].append(
                _cpu_us(lambda b=batch: sessions[monitored].run(list(monitor.output_names), b), 20)
            )
        a, b = statistics.median(times["plain"]), statistics.median(times["monitored"])
        model_call[str(n)] = {"plain_us": a, "monitored_us": b, "extra_us": b - a, "extra_pct": 100 * (b / a - 1)}
    packed = monitor.pack(sessions[monitored].run(list(monitor.output_names), {"image": test[:16]}))
    rows = [packed[i : i + 1] for i in range(16)]
    capture = Capture(CaptureSettings(uri="bench", queue_size=1_000_000, batch=10**9), _NullSink())
    count = 50_000
    offer = _cpu_us(lambda: capture.offer(capture.request_id(), monitor, rows[capture.offered % 16]), count)
    fields = _cpu_us(lambda: monitor.ood_fields(rows[0]), count)
    started = time.process_time()
    written = capture.flush()
    writer = (time.process_time() - started) / written * 1e6
    return {
        "model_call": model_call,
        "capture_request_path_us": offer,
        "ood_fields_us": fields,
        "writer_us_per_record": writer,
    }


# --------------------------------------------------------------------------- OOD and drift


def ood_figures(model: Path, test: np.ndarray) -> dict[str, Any]:
    items = nonclothing_set()
    odd = np.stack([item.array for item in items])
    test_flags = run_model(model / "model.onnx", test)["monitor"][:, 1] > 0.5
    odd_flags = run_model(model / "model.onnx", odd)["monitor"][:, 1] > 0.5
    kinds: dict[str, list[int]] = {}
    for item, flag in zip(items, odd_flags, strict=True):
        kinds.setdefault(item.kind, [0, 0])
        kinds[item.kind][0] += int(flag)
        kinds[item.kind][1] += 1
    return {
        "test_flagged": float(test_flags.mean()),
        "test_images": len(test),
        "nonclothing_flagged": float(odd_flags.mean()),
        "nonclothing_images": len(items),
        "by_kind": {k: {"flagged": f, "images": n} for k, (f, n) in kinds.items()},
    }


def window_of(session: Any, monitor: ModelMonitor, images: np.ndarray) -> Any:
    """Records for ``images`` made as the server makes them (one request per image)."""
    packed = np.concatenate(
        [
            monitor.pack(session.run(list(monitor.output_names), {"image": images[i : i + 256]}))
            for i in range(0, len(images), 256)
        ]
    )
    items = [(f"bench-{i:x}", 1.8e9 + i, monitor, packed[i : i + 1], None) for i in range(len(packed))]
    return to_window(build_records(items, 1.0))


def drift_figures(model: Path, test: np.ndarray, labels: np.ndarray, windows: int) -> dict[str, Any]:
    import onnxruntime as ort

    profile = ReferenceProfile.read(model / PROFILE_FILE)
    params = load_monitor_params(REPO / "params.yaml")
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    monitor = ModelMonitor.from_session(session, version="bench", labels=tuple(profile.labels))
    order = np.random.default_rng(0).permutation(len(test))
    size = 500
    alarms = []
    for w in range(windows):
        pick = order[(w * size) % len(test) : (w * size) % len(test) + size]
        if len(pick) < size:  # more windows than the test set holds: draw afresh
            pick = np.random.default_rng(w).choice(len(test), size, replace=False)
        verdict = compare(window_of(session, monitor, test[pick]), profile, params)
        alarms.append([c.name for c in verdict.drifted])
    power: dict[str, Any] = {}
    for shift in SHIFTS:
        for fraction in (None, 0.2, 0.1):
            if shift == "none" and fraction is not None:
                continue
            images, _ = shifted(test, labels, shift, size, fraction=fraction, seed=1)
            verdict = compare(window_of(session, monitor, images), profile, params)
            key = shift if fraction is None else f"{shift}@{fraction}"
            power[key] = {
                "drift": verdict.drift,
                "checks": [c.name for c in verdict.drifted],
                "ood_rate": verdict.ood_rate,
            }
    return {
        "window": size,
        "windows": windows,
        "false_alarms": sum(1 for a in alarms if a),
        "false_alarm_checks": [a for a in alarms if a],
        "power": power,
    }


def _print(results: dict[str, Any]) -> None:
    if "ood" in results:
        ood = results["ood"]
        print(f"OOD: {100 * ood['test_flagged']:.2f} % of {ood['test_images']} test images flagged (target <= 5 %); "
              f"{100 * ood['nonclothing_flagged']:.1f} % of {ood['nonclothing_images']} non-clothing images (target >= 90 %)")  # fmt: skip
        for kind, v in ood["by_kind"].items():
            print(f"  {kind:<9} {v['flagged']:>3} / {v['images']}")
    if "drift" in results:
        drift = results["drift"]
        print(
            f"false alarms: {drift['false_alarms']} of {drift['windows']} windows of {drift['window']} (target <= 5 %)"
        )
        for key, v in drift["power"].items():
            print(
                f"  {key:<15} {'DRIFT' if v['drift'] else 'healthy':<8} ood {100 * (v['ood_rate'] or 0):5.1f} %  {', '.join(v['checks'][:5])}"
            )
    if "costs" in results:
        costs = results["costs"]
        for n, v in costs["model_call"].items():
            print(f"model call, batch {n:>2}: {v['plain_us']:.0f} us -> {v['monitored_us']:.0f} us with the monitor output (+{v['extra_us']:.0f} us, {v['extra_pct']:+.1f} %)")  # fmt: skip
        print(f"capture on the request path: {costs['capture_request_path_us']:.2f} us/request; ood fields "
              f"{costs['ood_fields_us']:.2f} us; writer thread {costs['writer_us_per_record']:.1f} us/record")  # fmt: skip
    if "serving" in results:
        for name, v in results["serving"].items():
            if name not in ("load_run", "paired"):
                print(
                    f"{name:<30} c1 p50 {v['c1_p50_ms_median']:.2f} ms   c16 {v['c16_rps_median']:.0f} req/s "
                    f"(p50 {v['c16_p50_ms_median']:.1f} ms, server CPU {v['c16_cpu_us_per_request_median']:.0f} us/request)"
                )
        for pair, ratios in results["serving"]["paired"].items():
            print(f"{pair}: median of per-round ratios " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
        run = results["serving"]["load_run"]
        print(f"load run with capture: {run['requests']} requests, {run['errors']} errors, RSS MB {' '.join(f'{x:.0f}' for x in run['rss_mb'])}, "
              f"capture {run['capture']}, {run['records_on_disk']} records on disk")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.monitoring", description=__doc__.splitlines()[0])
    parser.add_argument(
        "parts", nargs="*", choices=[[], *PARTS], help=f"what to measure: {', '.join(PARTS)} (default: all)"
    )
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "fashion-mnist")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("EDGE_DATA_MIRROR", REPO / "data" / "fashion-mnist"))
    )
    parser.add_argument("--windows", type=int, default=20, help="unshifted windows of 500 for the false-alarm rate")
    parser.add_argument("--rounds", type=int, default=12, help="alternating rounds of the three servers")
    parser.add_argument("--requests", type=int, default=10_000, help="requests in the capture load run")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "monitoring.json")
    args = parser.parse_args(args_in)
    args.parts = args.parts or list(PARTS)
    if not (args.model_dir / "model.onnx").is_file():
        print(
            f"no model in {args.model_dir}: train one ('dvc repro' or 'python -m benchmarks.train_bench') or pass --model-dir"
        )
        return 2
    work = Path(tempfile.mkdtemp(prefix="edge-monitor-bench-"))
    fpr = load_monitor_params(REPO / "params.yaml").ood.fpr
    plain = plain_model_dir(args.model_dir, work / "plain")  # a trained model has the monitor outputs already
    model, prepare_s = monitored_model(plain, args.data, work, fpr)
    test, labels = load_idx(args.data, "t10k", 10_000)
    load = os.getloadavg()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_start": load,
        "model": str(args.model_dir),
        "prepare_model_s": round(prepare_s, 1),
    }
    print(
        f"machine: {results['machine']}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; prepare_model {prepare_s:.1f} s"
    )
    if "ood" in args.parts:
        results["ood"] = ood_figures(model, test)
    if "drift" in args.parts:
        results["drift"] = drift_figures(model, test, labels, args.windows)
    if "costs" in args.parts:
        results["costs"] = cost_figures(plain, model, test)
    if "serving" in args.parts:
        results["serving"] = serving_figures(plain, model, test, work, args.rounds, args.requests)
    results["load_average_end"] = os.getloadavg()
    _print(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"figures written to {args.json}; load average at the end {results['load_average_end'][0]:.1f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
