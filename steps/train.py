"""DVC stage `train`: train the CNN as one tracked Sacred run; write the model folder (model.keras,
model.onnx with its monitor outputs, reference_profile.npz, model_card.json), train metrics and
per-epoch history (DVC plots) - all atomically.

    python -m steps.train --data-dir data/prepared --params params.yaml \
        --model-dir models/fashion-mnist --metrics metrics/train.json --history reports/train_history.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steps import exit_process, run_step
from vertex_edge.training.run import TrainOutputs
from vertex_edge.training.stage import TrainStage, run_train_stage


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.train", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="prepared data (train.npz, test.npz, meta.json)")
    p.add_argument("--params", type=Path, required=True, help="params.yaml (the 'train' section and monitor.ood are used)")
    p.add_argument(
        "--model-dir", type=Path, required=True, help="output folder: model.keras, model.onnx, reference_profile.npz, model_card.json"
    )
    p.add_argument("--metrics", type=Path, required=True, help="train metrics (JSON)")
    p.add_argument("--history", type=Path, required=True, help="per-epoch history (CSV, DVC plots)")
    p.add_argument("--config", type=Path, default=Path("edge.yaml"), help="edge.yaml, for the tracking settings")
    p.add_argument("--offline", action="store_true", help="do not track this run (same as EDGE_OFFLINE=1)")
    return p


def run(args: argparse.Namespace) -> None:
    stage = TrainStage(
        repo=Path.cwd(), config_path=args.config, data_dir=args.data_dir, params_path=args.params,
        outputs=TrainOutputs(args.model_dir, args.metrics, args.history), offline=args.offline,
    )  # fmt: skip
    run_train_stage(stage, echo=lambda line: print(line, flush=True))


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
