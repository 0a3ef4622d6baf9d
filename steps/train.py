"""DVC stage `train`: train the CNN as a Sacred experiment; write the model, its ONNX export,
a model card, per-epoch history (DVC plots) and train metrics - all atomically.

    python -m steps.train --data-dir data/prepared --params params.yaml \
        --model-dir models/fashion-mnist --metrics metrics/train.json --history reports/train_history.csv
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from steps import exit_process, run_step


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.train", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="prepared data (train.npz, test.npz, meta.json)")
    p.add_argument("--params", type=Path, required=True, help="params.yaml (the 'train' section is used)")
    p.add_argument(
        "--model-dir", type=Path, required=True, help="output folder: model.keras, model.onnx, model_card.json"
    )
    p.add_argument("--metrics", type=Path, required=True, help="train metrics (JSON)")
    p.add_argument("--history", type=Path, required=True, help="per-epoch history (CSV, DVC plots)")
    p.add_argument("--config", type=Path, default=Path("edge.yaml"), help="edge.yaml, for the tracking settings")
    p.add_argument("--offline", action="store_true", help="do not track this run (same as EDGE_OFFLINE=1)")
    return p


def run(args: argparse.Namespace) -> None:
    from vertex_edge.config import EdgeConfig, load_config
    from vertex_edge.gcp.sacred import tracking_environment
    from vertex_edge.layout import LocalLayout
    from vertex_edge.params import load_params
    from vertex_edge.tracking import resolve_tracking
    from vertex_edge.trainer import TrainOutputs, run_tracked_training

    repo = Path.cwd()
    config = load_config(args.config) if args.config.exists() else EdgeConfig()
    params = load_params(args.params)
    outputs = TrainOutputs(model_dir=args.model_dir, metrics=args.metrics, history=args.history)
    # on the gcp target this holds a port-forward to Sacred's MongoDB open while training runs
    with tracking_environment(config, os.environ, offline=args.offline) as env:
        target = resolve_tracking(
            enabled=config.tracking.enabled,
            mongodb_url=config.tracking.mongodb_url,
            mongodb_db=config.tracking.mongodb_db,
            file_store=LocalLayout.from_config(config, repo).experiments,
            env=env,
            offline=args.offline,
        )
        run_tracked_training(
            data_dir=args.data_dir,
            params=params.train,
            outputs=outputs,
            tracking=target,
            model_name=config.model.name,
            repo=repo,
            echo=lambda line: print(line, flush=True),
        )


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
