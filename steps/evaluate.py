"""DVC stage `evaluate`: score the exported ONNX model on the test set and apply the quality gate.

    python -m steps.evaluate --data-dir data/prepared --model-dir models/fashion-mnist --params params.yaml \
        --metrics metrics/evaluate.json --confusion reports/confusion.csv --confusion-png reports/confusion_matrix.png

Fails (exit 1) with the figures when test accuracy is below params.yaml evaluate.min_accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steps import exit_process, run_step
from vertex_edge.evaluate import evaluate_model, write_reports
from vertex_edge.params import load_params


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--params", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True, help="evaluation metrics (JSON)")
    p.add_argument("--confusion", type=Path, required=True, help="actual/predicted pairs (CSV, DVC confusion plot)")
    p.add_argument("--confusion-png", type=Path, required=True, help="confusion matrix image")
    return p


def run(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    result = evaluate_model(args.model_dir, args.data_dir)
    verdict = write_reports(
        result,
        metrics=args.metrics,
        confusion_csv=args.confusion,
        confusion_png=args.confusion_png,
        min_accuracy=params.evaluate.min_accuracy,
    )
    print(f"evaluate: test accuracy {result.accuracy:.4f} (gate {params.evaluate.min_accuracy:.4f})")
    verdict.enforce("quality gate failed")


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
