"""Monitoring benchmarks: the OOD flag, false alarms and power of the drift checks, and what
capture costs the real prediction server - figures for benchmarks/README.md.

    python -m benchmarks.monitoring [--model-dir DIR] [--data DIR] [ood drift serving ...]

* ``ood``: the share of Fashion-MNIST test images flagged (target <= 5 %) and of the non-clothing
  set flagged (target >= 90 %), per kind;
* ``drift``: windows of 500 unshifted test records flagged (target <= 5 % over >= 20 windows) and
  each simulator shift detected within one window of 500 (also at 20 % and 10 % of the window);
  records are made by the capture's own code (``build_records``) from the served model's output;
* ``serving``: three real server processes side by side - the model as exported (no monitor
  output, no capture), the monitored model without capture, and with capture to local files -
  measured in alternating rounds: p50 latency at concurrency 1, throughput and p50 at concurrency
  16; then 10,000 requests with capture on, sampling the server's RSS and the dropped-record count.

The servers run ``vertex_edge.serving`` with the monitoring hooks applied by :func:`install`
(the wiring proposed for ``vertex_edge/serving``: the model's monitor output packed with the
probabilities, ``ood`` and ``request_id`` in each prediction, capture on the request path).
The model needs no reference profile: one is made from the training images' validation split
(the seed and split of the model card), exactly as training will.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.serving import HOST, _free_port, rss_mb, run_load
from vertex_edge.artifact import MODEL_FILES, ModelArtifact, digests
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

REPO = Path(__file__).resolve().parents[1]
PARTS = ("ood", "drift", "serving")


# --------------------------------------------------------------------------- data and model


def load_idx(folder: Path, prefix: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    images = idx.read_images(folder / f"{prefix}-images-idx3-ubyte.gz", count=count, shape=(28, 28))
    labels = idx.read_labels(folder / f"{prefix}-labels-idx1-ubyte.gz", count=count, num_classes=10)
    return images.astype(np.float32), labels.astype(np.int64)


def monitored_model(model_dir: Path, data: Path, work: Path, fpr: float) -> tuple[Path, float]:
    """A copy of ``model_dir`` prepared for monitoring (profile from the validation split)."""
    from vertex_edge.data.prepare import Split
    from vertex_edge.params import TrainParams
    from vertex_edge.training.fit import split_train_val

    target = work / "monitored"
    shutil.copytree(model_dir, target)
    if (target / PROFILE_FILE).is_file():
        return target, 0.0
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
    artifact.write_card(artifact.card.with_updates(artifacts=digests(target, (*MODEL_FILES, PROFILE_FILE))))
    return target, seconds


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


# --------------------------------------------------------------------------- the server harness


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
        [sys.executable, "-m", "benchmarks.monitoring", "harness"]
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
    servers = {name: start(model, work / f"server-{i}.log", harness=h, capture_uri=uri)
               for i, (name, (model, h, uri)) in enumerate(configs.items())}  # fmt: skip
    keys = ("c1_p50_ms", "c16_rps", "c16_p50_ms", "c16_cpu_us_per_request")
    results: dict[str, Any] = {name: {key: [] for key in keys} for name in configs}
    try:
        for _, port in servers.values():
            run_load(port, "/predict", body, 8, 500)  # warm-up
        for _ in range(rounds):
            for name, (proc, port) in servers.items():
                c1 = run_load(port, "/predict", body, 1, 1000)
                before = cpu_s(proc.pid)
                c16 = run_load(port, "/predict", body, 16, 3000)
                spent = cpu_s(proc.pid) - before
                results[name]["c1_p50_ms"].append(c1["p50_ms"])
                results[name]["c16_rps"].append(c16["rps"])
                results[name]["c16_p50_ms"].append(c16["p50_ms"])
                results[name]["c16_cpu_us_per_request"].append(spent / max(c16["requests"], 1) * 1e6)
        for name in configs:
            for key in keys:
                results[name][key + "_median"] = statistics.median(results[name][key])
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
    if "serving" in results:
        for name, v in results["serving"].items():
            if name != "load_run":
                print(
                    f"{name:<30} c1 p50 {v['c1_p50_ms_median']:.2f} ms   c16 {v['c16_rps_median']:.0f} req/s (p50 {v['c16_p50_ms_median']:.1f} ms)"
                )
        run = results["serving"]["load_run"]
        print(f"load run with capture: {run['requests']} requests, {run['errors']} errors, RSS MB {' '.join(f'{x:.0f}' for x in run['rss_mb'])}, "
              f"capture {run['capture']}, {run['records_on_disk']} records on disk")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["harness"]:
        return harness_main()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=[[], *PARTS], help=f"what to measure: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "fashion-mnist")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("EDGE_DATA_MIRROR", REPO / "data" / "fashion-mnist"))
    )
    parser.add_argument("--windows", type=int, default=20, help="unshifted windows of 500 for the false-alarm rate")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three servers")
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
    model, prepare_s = monitored_model(args.model_dir, args.data, work, fpr)
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
    if "serving" in args.parts:
        results["serving"] = serving_figures(args.model_dir, model, test, work, args.rounds, args.requests)
    results["load_average_end"] = os.getloadavg()
    _print(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"figures written to {args.json}; load average at the end {results['load_average_end'][0]:.1f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
