"""Benchmark: what the Vertex job contract costs per epoch on this CPU - the `vertex-local` path
(`python -m steps.train_vertex --backend vertex-local`: the trainer entrypoint as a subprocess,
checkpoint every epoch, TensorBoard scalars, outputs copied through the AIP_* folders) against the
plain local train stage (`python -m steps.train`) - and a 2-process MultiWorkerMirroredStrategy
run on CPU (`--replicas 2`).

    python -m benchmarks.vertex_local [--subset 20000] [--epochs 3] [--repeats 2] [--no-multiworker]

Both stages run the real code on the real Fashion-MNIST files (prepared once into a temporary
project; tracking off) with params.yaml's model and augmentation, a training subset and no early
stopping. The epoch time is the wall time between consecutive epoch lines as they are printed, so
it includes everything done between epochs (validation, the checkpoint, TensorBoard); the first
epoch (graph tracing) is left out. Runs alternate local / vertex-local to share the machine's noise,
and the overhead compares the fastest epoch of each path (the least disturbed by other work); the
checkpoint's own time, measured inside the trainer, is reported too.
Figures go to benchmarks/results/vertex_local.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)\s")
CHECKPOINT_LINE = re.compile(r"^checkpoint: epoch \d+ saved to .* \((\d+\.\d+)s\)$")
STAGE_ARGS = ["--data-dir", "data/prepared", "--params", "params.yaml", "--model-dir", "models/fashion-mnist",
              "--metrics", "metrics/train.json", "--history", "reports/train_history.csv", "--offline"]  # fmt: skip


def prepare_project(folder: Path, mirror: Path, train_params: dict) -> Path:
    from vertex_edge.data.manifest import load_manifest
    from vertex_edge.data.prepare import prepare
    from vertex_edge.fsutil import atomic_write_json

    report = prepare(load_manifest(REPO / "data" / "fashion-mnist.yaml"), mirror, folder / "data" / "prepared")
    atomic_write_json(folder / "data" / "prepared" / "meta.json", {k: report[k] for k in ("labels", "image_shape", "data_version")})
    (folder / "params.yaml").write_text(yaml.safe_dump({"train": train_params, "evaluate": {"min_accuracy": 0.0}}))
    return folder


def run_stage(project: Path, argv: list[str], label: str) -> dict:
    """Run a stage; time each epoch line as it arrives; return the figures."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("EDGE_MONGODB_URL", None)
    started = time.perf_counter()
    arrivals: list[tuple[int, float]] = []
    lines: list[str] = []
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        match = EPOCH_LINE.match(line)
        if match and not any(e == int(match.group(1)) for e, _ in arrivals):  # the stage may repeat epoch lines
            arrivals.append((int(match.group(1)), time.perf_counter()))
    code = proc.wait()
    total = time.perf_counter() - started
    if code != 0:
        print("\n".join(lines[-30:]))
        raise SystemExit(f"{label} failed with exit code {code}")
    intervals = [b - a for (_, a), (_, b) in zip(arrivals, arrivals[1:], strict=False)]
    checkpoints = [float(m.group(1)) for line in lines if (m := CHECKPOINT_LINE.match(line))]
    card = json.loads((project / "models" / "fashion-mnist" / "model_card.json").read_text())
    return {
        "label": label,
        "epoch_seconds": [round(s, 2) for s in intervals],  # epochs 2..N
        "stage_seconds": round(total, 1),
        "checkpoint_seconds": checkpoints,
        "test_accuracy": card["metrics"]["test_accuracy"],
    }


def main(argv: list[str] | None = None) -> int:
    from vertex_edge.params import load_params

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mirror", type=Path, default=Path(os.environ.get("EDGE_DATA_MIRROR", REPO.parent / "shared" / "fashion-mnist")))
    p.add_argument("--subset", type=int, default=20000, help="training images (0: all)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--multiworker-subset", type=int, default=6000)
    p.add_argument("--no-multiworker", action="store_true")
    args = p.parse_args(argv)
    if not args.mirror.is_dir():
        args.mirror = REPO / "data" / "fashion-mnist"
    base = load_params(REPO / "params.yaml").train.model_dump(mode="json")
    train_params = {**base, "epochs": args.epochs, "subset": args.subset, "early_stopping_patience": 0}
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "params": train_params, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-vertex-") as tmp:
        project = prepare_project(Path(tmp), args.mirror, train_params)
        for i in range(args.repeats):
            for label, module, extra in (
                ("local", "steps.train", []),
                ("vertex-local", "steps.train_vertex", ["--job-record", "vertex_job.json", "--backend", "vertex-local"]),
            ):
                run = run_stage(project, [module, *STAGE_ARGS, *extra], label)
                results["runs"].append(run)
                print(f"[{i + 1}/{args.repeats}] {label:<13} epochs 2..{args.epochs}: {run['epoch_seconds']} s; "
                      f"stage {run['stage_seconds']} s; test accuracy {run['test_accuracy']:.4f}", flush=True)  # fmt: skip
        summary = {}
        for label in ("local", "vertex-local"):
            epochs = [s for r in results["runs"] if r["label"] == label for s in r["epoch_seconds"]]
            stages = [r["stage_seconds"] for r in results["runs"] if r["label"] == label]
            summary[label] = {
                "epoch_min_s": round(min(epochs), 2),
                "epoch_median_s": round(statistics.median(epochs), 2),
                "stage_min_s": round(min(stages), 1),
            }
        # the fastest epoch of each path is the one least disturbed by other work on the machine
        overhead = summary["vertex-local"]["epoch_min_s"] / summary["local"]["epoch_min_s"] - 1
        summary["epoch_overhead_pct"] = round(100 * overhead, 1)
        # the work the contract adds between epochs, timed inside the trainer (immune to the machine's noise)
        ckpt = [c for r in results["runs"] if r["label"] == "vertex-local" for c in r["checkpoint_seconds"]]
        if ckpt:
            summary["checkpoint_median_s"] = round(statistics.median(ckpt), 3)
            summary["checkpoint_pct_of_local_epoch"] = round(100 * statistics.median(ckpt) / summary["local"]["epoch_min_s"], 2)
        results["summary"] = summary
        print(json.dumps(summary, indent=2))
        print(f"per-epoch overhead of the Vertex job contract (fastest epochs): {100 * overhead:+.1f}% (target < 5%)")
        if ckpt:
            print(f"per-epoch work the contract adds (checkpoint save + copy): {statistics.median(ckpt):.2f} s = "
                  f"{summary['checkpoint_pct_of_local_epoch']:.2f}% of a local epoch")  # fmt: skip

        if not args.no_multiworker:
            mw_params = {**train_params, "epochs": 2, "subset": args.multiworker_subset}
            (project / "params.yaml").write_text(yaml.safe_dump({"train": mw_params, "evaluate": {"min_accuracy": 0.0}}))
            single = run_stage(project, ["steps.train_vertex", *STAGE_ARGS, "--job-record", "vertex_job.json",
                                         "--backend", "vertex-local"], "vertex-local x1")  # fmt: skip
            multi = run_stage(project, ["steps.train_vertex", *STAGE_ARGS, "--job-record", "vertex_job.json",
                                        "--backend", "vertex-local", "--replicas", "2"], "vertex-local x2")  # fmt: skip
            record = json.loads((project / "vertex_job.json").read_text())
            results["multiworker"] = {"params": mw_params, "single": single, "two_replicas": multi,
                                      "strategy": record["trainer"]["strategy"], "replicas": record["trainer"]["replicas"]}  # fmt: skip
            print(f"2 replicas ({record['trainer']['strategy']}): epoch 2 {multi['epoch_seconds']} s, stage "
                  f"{multi['stage_seconds']} s, test accuracy {multi['test_accuracy']:.4f}; 1 replica: epoch 2 "
                  f"{single['epoch_seconds']} s, stage {single['stage_seconds']} s, test accuracy {single['test_accuracy']:.4f}")  # fmt: skip
    out = REPO / "benchmarks" / "results" / "vertex_local.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
