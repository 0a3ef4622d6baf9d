"""DVC stage `evaluate`: score the exported ONNX model on the test set and record the quality gate.

    python -m steps.evaluate --data-dir data/prepared --model-dir models/fashion-mnist --params params.yaml \
        --metrics metrics/evaluate.json --evaluation reports/evaluation.json \
        --confusion reports/confusion.csv --confusion-png reports/confusion_matrix.png

A model below params.yaml evaluate.min_accuracy is RECORDED as failing the gate (metrics `gate`,
`threshold`, `margin`) and said plainly, but the stage succeeds: `dvc repro` and `dvc exp run` keep
the experiment so it can be compared. `python -m steps.gate` turns the verdict into an exit code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steps import exit_process, run_step
from vertex_edge.evaluate import EvaluateOutputs, run_evaluate_stage


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--params", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True, help="the figures DVC compares (JSON)")
    p.add_argument("--evaluation", type=Path, required=True, help="the full evaluation: model sha256, per class (JSON)")
    p.add_argument("--confusion", type=Path, required=True, help="actual/predicted pairs (CSV, DVC confusion plot)")
    p.add_argument("--confusion-png", type=Path, required=True, help="confusion matrix image")
    p.add_argument("--config", type=Path, default=Path("edge.yaml"), help="edge.yaml, for the tracking settings")
    p.add_argument("--offline", action="store_true", help="attach nothing to the Sacred run (EDGE_OFFLINE=1)")
    return p


def run(args: argparse.Namespace) -> None:
    outputs = EvaluateOutputs(args.metrics, args.evaluation, args.confusion, args.confusion_png)
    verdict, record, attached = run_evaluate_stage(
        repo=Path.cwd(), model_dir=args.model_dir, data_dir=args.data_dir, params_path=args.params,
        outputs=outputs, config_path=args.config, offline=args.offline,
    )  # fmt: skip
    print(f"evaluate: test accuracy {record.accuracy:.4f}, loss {record.log_loss:.4f} on {record.count} images "
          f"(model {record.model_version})")  # fmt: skip
    if verdict.passed:
        print(f"quality gate passed: {verdict.accuracy:.4f} >= evaluate.min_accuracy {verdict.min_accuracy:.4f} "
              f"(margin {verdict.margin:+.4f})")  # fmt: skip
    else:
        print(
            f"QUALITY GATE FAILED: test accuracy {verdict.accuracy:.4f} is below evaluate.min_accuracy "
            f"{verdict.min_accuracy:.4f} (margin {verdict.margin:+.4f}).\n"
            "  The experiment is kept with its metrics (compare: 'dvc exp show'); deploy-vertex.py refuses this "
            "model and 'python -m steps.gate' exits 1.",
            flush=True,
        )
    if attached.run_id:
        print(f"attached {', '.join(attached.names)} to Sacred run {attached.run_id}")
    elif record.sacred_run_id:
        print(f"note: nothing attached to Sacred run {record.sacred_run_id}: {attached.reason}")


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
