"""Benchmark: training on the full data, one params file or two side by side.

    python -m benchmarks.train_bench [--params params.yaml] [--seed N] [--mirror DIR]
        [--profile gpu] [--epochs N] [--subset N]
    python -m benchmarks.train_bench --compare OLD NEW [--seeds 3] [--first-seed 42] [--mirror DIR]

Runs the real prepare and train code (``vertex_edge.training.fit.train`` and the stage's
``save_model``: ONNX export checked against Keras, then the monitor outputs and the reference
profile of the validation split, with ``monitor.ood.fpr`` of the repository's ``params.yaml``;
no tracking) in a temporary folder. One run prints test accuracy (that of the exported model),
wall and CPU seconds of ``model.fit``, the seconds taken by the monitoring export (not part of
``model.fit``), the whole stage, epochs run and the best epoch.

``--compare OLD NEW`` trains both params files once per seed (``train.seed`` overridden), each
run in a fresh process, alternating which goes first (OLD NEW, NEW OLD, ...) so that a shared
machine's load falls on both alike. It prints every run, the means and the NEW/OLD time ratios,
then the ONNX Runtime time per image of both exported models as served (the prediction server's
session options, asking for the outputs the server asks for: the probabilities and, when the
model has it, the monitor output; model alone, batch 1 and 64; interleaved). The load average is recorded with each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPUs"


def prepare_data(mirror: Path, out: Path) -> Path:
    from vertex_edge.data.manifest import load_manifest
    from vertex_edge.data.prepare import PreparedMeta, prepare, write_meta

    report = prepare(load_manifest(REPO / "data" / "fashion-mnist.yaml"), mirror, out)
    write_meta(out, PreparedMeta.model_validate(report))
    return out


def load_train_params(path: Path, seed: int | None, **overrides: Any) -> Any:
    """``train`` of a params file; ``profile`` (applied first), then ``seed``/``epochs``/``subset`` overridden."""
    from vertex_edge.params import TrainParams, load_params

    params = load_params(path).train
    if overrides.get("profile"):
        params = TrainParams.model_validate({**params.model_dump(), "profile": overrides["profile"]})
    update = {k: v for k, v in {"seed": seed, **overrides}.items() if v is not None and k != "profile"}
    return params.model_copy(update=update)


def ood_fpr() -> float:
    """``monitor.ood.fpr`` of the repository's params.yaml (both sides of a comparison use it)."""
    from vertex_edge.params import load_params

    return load_params(REPO / "params.yaml", require=["monitor.ood"]).monitor.ood.fpr


def run_once(params: Any, data_dir: Path, out_dir: Path, label: str = "") -> dict[str, Any]:
    """One training as the DVC stage does it (tracking off); the figures as a dict."""
    from vertex_edge.data.prepare import load_meta, load_npz
    from vertex_edge.gitinfo import GitInfo
    from vertex_edge.training.export import save_model
    from vertex_edge.training.fit import train

    started = time.perf_counter()
    fpr = ood_fpr()  # read before training: the file may be edited meanwhile
    meta = load_meta(data_dir)
    train_split, test_split = load_npz(data_dir / "train.npz"), load_npz(data_dir / "test.npz")
    loads = [os.getloadavg()[0]]
    prefix = f"[{label}] " if label else ""

    def on_epoch(epoch: int, logs: dict[str, float], seconds: float) -> None:
        loads.append(os.getloadavg()[0])
        shown = "  ".join(f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs)
        print(f"{prefix}epoch {epoch}/{params.epochs}  {shown}  ({seconds:.1f}s, load {loads[-1]:.2f})", flush=True)

    result = train(train_split, test_split, params, num_classes=meta.num_classes, on_epoch=on_epoch)
    (out_dir / "model").mkdir(parents=True, exist_ok=True)
    artifact = save_model(
        result, out_dir / "model", meta=meta, params=params, model_name="fashion-mnist", git=GitInfo(),
        sample=test_split.images[:256], ood_fpr=fpr,
    )  # fmt: skip
    monitor = artifact.card.monitor
    return {
        "label": label,
        "seed": params.seed,
        "test_accuracy": result.test_accuracy,
        "fit_wall_s": result.seconds,
        "fit_cpu_s": result.cpu_seconds,
        "stage_s": time.perf_counter() - started,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "onnx_max_abs_diff": artifact.card.onnx_max_abs_diff,
        "monitor_s": monitor.seconds if monitor else None,
        "heldout_images": monitor.heldout_images if monitor else 0,
        "load_mean": statistics.fmean(loads),
        "load_max": max(loads),
        "model_dir": str(out_dir / "model"),
    }


def served_call(path: Path, *, threads: int) -> Any:
    """A function running the model folder's ONNX model as the server does: its session options,
    and the outputs it asks for (:class:`~vertex_edge.monitoring.layout.ModelMonitor`)."""
    from vertex_edge.monitoring.layout import ModelMonitor
    from vertex_edge.serving.model import load_model_dir

    model = load_model_dir(path, threads=threads)
    names = list(ModelMonitor.from_session(model.session, version=model.version, labels=model.labels).output_names)
    return lambda x: model.session.run(names, {model.input_name: x})


def onnx_per_image(model_dirs: dict[str, Path], *, rounds: int = 7, threads: int = 1) -> dict[str, dict[str, float]]:
    """Median ONNX Runtime milliseconds per image of each model as served (:func:`served_call`,
    model alone), batches of 1 and 64, the models interleaved round by round."""
    import numpy as np

    models = {name: served_call(path, threads=threads) for name, path in model_dirs.items()}
    images = np.random.default_rng(0).integers(0, 256, size=(64, 28, 28)).astype(np.float32)
    samples: dict[tuple[str, int], list[float]] = {(n, b): [] for n in models for b in (1, 64)}
    for call in models.values():  # warm-up
        for _ in range(20):
            call(images[:1])
            call(images)
    for _ in range(rounds):
        for name, call in models.items():
            for batch, repeats in ((1, 300), (64, 30)):
                x = images[:batch]
                t = time.perf_counter()
                for _ in range(repeats):
                    call(x)
                samples[(name, batch)].append((time.perf_counter() - t) * 1e3 / (repeats * batch))
    return {name: {f"batch{b}_ms": statistics.median(samples[(name, b)]) for b in (1, 64)} for name in models}


def compare(args: argparse.Namespace) -> int:
    from vertex_edge.proc import run

    old, new = (Path(p) for p in args.compare)
    for path in (old, new):
        load_train_params(path, None)  # fail before any training
    seeds = [args.first_seed + i for i in range(args.seeds)]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = prepare_data(args.mirror, tmp / "prepared")
        for i, seed in enumerate(seeds):
            order = [("OLD", old), ("NEW", new)]
            for label, path in order if i % 2 == 0 else order[::-1]:
                out = tmp / f"{label}-{seed}"
                child = [sys.executable, "-m", "benchmarks.train_bench", "--params", str(path), "--seed", str(seed)]
                child += ["--prepared", str(data_dir), "--out", str(out), "--label", f"{label} seed {seed}"]
                run(child, cwd=REPO, capture=False)
                runs.append(json.loads((out / "run.json").read_text()))
                r = runs[-1]
                print(
                    f"== {label} seed {seed}: accuracy {r['test_accuracy']:.4f}  fit {r['fit_wall_s']:.0f} s wall, "
                    f"{r['fit_cpu_s']:.0f} s CPU  load {r['load_mean']:.2f}  monitoring export {r['monitor_s'] or 0:.1f} s",
                    flush=True,
                )
        inference = {}
        if args.inference:
            inference = onnx_per_image({label: tmp / f"{label}-{seeds[0]}" / "model" for label in ("OLD", "NEW")})
    summary = summarize(runs, old, new, inference)
    print_summary(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def summarize(runs: list[dict[str, Any]], old: Path, new: Path, inference: dict[str, Any]) -> dict[str, Any]:
    by = {label: [r for r in runs if r["label"].startswith(label)] for label in ("OLD", "NEW")}
    means = {
        label: {
            k: statistics.fmean(r[k] for r in rs) for k in ("test_accuracy", "fit_wall_s", "fit_cpu_s", "load_mean")
        }
        for label, rs in by.items()
    }
    pairs = list(zip(by["OLD"], by["NEW"], strict=True))
    return {
        "machine": machine(),
        "files": {"OLD": str(old), "NEW": str(new)},
        "runs": runs,
        "means": means,
        "min_accuracy": {label: min(r["test_accuracy"] for r in rs) for label, rs in by.items()},
        "wall_ratio": means["NEW"]["fit_wall_s"] / means["OLD"]["fit_wall_s"],
        "cpu_ratio": means["NEW"]["fit_cpu_s"] / means["OLD"]["fit_cpu_s"],
        "wall_ratio_median_per_seed": statistics.median(n["fit_wall_s"] / o["fit_wall_s"] for o, n in pairs),
        "cpu_ratio_median_per_seed": statistics.median(n["fit_cpu_s"] / o["fit_cpu_s"] for o, n in pairs),
        "inference_ms_per_image": inference,
    }


def print_summary(s: dict[str, Any]) -> None:
    print(f"\nmachine: {s['machine']}; OLD = {s['files']['OLD']}, NEW = {s['files']['NEW']}")
    print(f"{'run':<16} {'accuracy':>8} {'fit wall':>9} {'fit CPU':>8} {'epochs':>7} {'load':>5}")
    for r in s["runs"]:
        print(
            f"{r['label']:<16} {r['test_accuracy']:>8.4f} {r['fit_wall_s']:>7.1f} s {r['fit_cpu_s']:>6.1f} s "
            f"{r['epochs_run']:>3} ({r['best_epoch']:>2}) {r['load_mean']:>5.2f}"
        )
    for label, m in s["means"].items():
        print(
            f"{'mean ' + label:<16} {m['test_accuracy']:>8.4f} {m['fit_wall_s']:>7.1f} s {m['fit_cpu_s']:>6.1f} s "
            f"{'':>8} {m['load_mean']:>5.2f}   (lowest accuracy {s['min_accuracy'][label]:.4f})"
        )
    print(
        f"NEW/OLD fit time: wall {s['wall_ratio']:.3f} (median per seed {s['wall_ratio_median_per_seed']:.3f}), "
        f"CPU {s['cpu_ratio']:.3f} (median per seed {s['cpu_ratio_median_per_seed']:.3f})"
    )
    inf = s["inference_ms_per_image"]
    if inf:
        for b in (1, 64):
            key = f"batch{b}_ms"
            print(
                f"ONNX Runtime per image, batch {b}: OLD {inf['OLD'][key]:.4f} ms, NEW {inf['NEW'][key]:.4f} ms "
                f"(NEW/OLD {inf['NEW'][key] / inf['OLD'][key]:.2f})"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--seed", type=int, default=None, help="override train.seed")
    p.add_argument("--profile", default=None, help="one run: use train.profiles.NAME (e.g. gpu)")
    p.add_argument("--epochs", type=int, default=None, help="one run: override train.epochs (smoke runs)")
    p.add_argument("--subset", type=int, default=None, help="one run: override train.subset (smoke runs)")
    p.add_argument("--mirror", type=Path, default=Path(os.environ.get("EDGE_DATA_MIRROR", "data/fashion-mnist")))
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="two params files, run alternately")
    p.add_argument("--seeds", type=int, default=3, help="--compare: how many seeds (first-seed, first-seed+1, ...)")
    p.add_argument("--first-seed", type=int, default=42)
    p.add_argument("--no-inference", dest="inference", action="store_false", help="--compare: skip ONNX timing")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    # used by --compare for its child runs
    p.add_argument("--prepared", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--label", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.compare:
        return compare(args)
    params = load_train_params(args.params, args.seed, profile=args.profile, epochs=args.epochs, subset=args.subset)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = args.prepared or prepare_data(args.mirror, tmp / "prepared")
        out = args.out or tmp / "run"
        result = run_once(params, data_dir, out, args.label)
        if args.out:
            (out / "run.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.out:
        print(f"machine: {machine()}")
        print(json.dumps({"params": params.model_dump(mode="json")}))
        print(
            f"test accuracy {result['test_accuracy']:.4f}  training {result['fit_wall_s']:.0f} s (model.fit; "
            f"{result['fit_cpu_s']:.0f} s CPU)  monitoring export {result['monitor_s'] or 0:.1f} s "
            f"({result['heldout_images']} held-out images)  stage {result['stage_s']:.0f} s  epochs {result['epochs_run']} "
            f"(best {result['best_epoch']})  load average {result['load_mean']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
