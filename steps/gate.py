"""The quality gate as an exit code: `dvc repro && python -m steps.gate` (CI, `make gate`).

    python -m steps.gate [--model-dir models/fashion-mnist] [--evaluation reports/evaluation.json] \
        [--params params.yaml]

The `evaluate` stage records the verdict but never fails the pipeline (a failing experiment is
kept). This check applies the rule deploy-vertex.py applies: the model folder is verified by
sha256, judged by the evaluation that names it, against the COMMITTED evaluate.min_accuracy.
Exit 0 when it passes, 1 when it fails (or the evaluation belongs to another model), 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steps import exit_process, run_step
from vertex_edge.deploy.candidate import (
    DEFAULT_EVALUATION,
    DEFAULT_MODEL_DIR,
    DEFAULT_PARAMS,
    gate_policy,
    load_candidate,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.gate", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="the trained model folder")
    p.add_argument("--evaluation", type=Path, default=DEFAULT_EVALUATION, help="the evaluate stage's record")
    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params.yaml (its committed version decides)")
    return p


def run(args: argparse.Namespace) -> None:
    policy, notes = gate_policy(Path.cwd(), args.params)
    candidate = load_candidate(args.model_dir, evaluation_path=args.evaluation, policy=policy)
    for note in [*notes, *candidate.notes]:
        print(f"note: {note}")
    print(f"model {candidate.card.version}: {candidate.gate_text()} ({policy.source}; figure from "
          f"{candidate.accuracy_source})")  # fmt: skip
    candidate.verdict.enforce(f"quality gate failed for model {candidate.card.version}",
                              hint="the experiment is kept: compare it with 'dvc exp show'; improve params.yaml 'train'")  # fmt: skip
    print("quality gate passed")


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
