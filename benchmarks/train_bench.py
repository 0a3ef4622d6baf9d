"""Benchmark: the default params.yaml on the full data (target >= 93.0% test accuracy with
<= 8 minutes of training on a 2-core CPU).

    python -m benchmarks.train_bench [--params params.yaml] [--mirror DIR]

Runs the real prepare and train code (tracking off) in a temporary folder and prints test
accuracy, training time (model.fit only, and the whole stage), epochs run and the best epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from vertex_edge.data.manifest import load_manifest
    from vertex_edge.data.prepare import prepare
    from vertex_edge.fsutil import atomic_write_json
    from vertex_edge.gitinfo import git_info
    from vertex_edge.params import load_params
    from vertex_edge.tracking.target import TrackingTarget
    from vertex_edge.training.run import LocalBackend, TrainOutputs, run_training

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--mirror", type=Path, default=Path(os.environ.get("EDGE_DATA_MIRROR", "data/fashion-mnist")))
    args = p.parse_args(argv)
    params = load_params(args.params).train
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        report = prepare(load_manifest(Path("data/fashion-mnist.yaml")), args.mirror, tmp / "prepared")
        atomic_write_json(tmp / "prepared" / "meta.json", {k: report[k] for k in ("labels", "image_shape", "data_version")})
        started = time.perf_counter()
        card = run_training(
            backend=LocalBackend(tmp / "prepared", "fashion-mnist", git_info(Path.cwd())),
            data_dir=tmp / "prepared",
            params=params,
            outputs=TrainOutputs(tmp / "model", tmp / "train.json", tmp / "history.csv"),
            tracking=TrackingTarget("off"),
            model_name="fashion-mnist",
            repo=Path.cwd(),
            echo=lambda line: print(line, flush=True),
        )
        stage = time.perf_counter() - started
    m = card.card.metrics.model_dump()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(json.dumps({"params": params.model_dump(mode="json")}))
    print(
        f"test accuracy {m['test_accuracy']:.4f}  training {m['train_seconds']:.0f} s (model.fit)  "
        f"stage {stage:.0f} s  epochs {m['epochs_run']} (best {m['best_epoch']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
