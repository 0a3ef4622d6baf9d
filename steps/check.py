"""DVC stage `check`: validate params.yaml before any stage that uses it deletes its outputs.

    python -m steps.check --params params.yaml --out reports/train_params.json

DVC removes a stage's outputs before running it. `train` depends on this stage's output, so DVC
runs `check` first: a bad, missing or unknown key fails here, naming the keys, and the previous
model, metrics and history are untouched. The output is the `train` section as checked (the
same params give the same bytes, so `train` re-runs exactly when its params change).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steps import exit_process, run_step
from vertex_edge.fsutil import atomic_write_json
from vertex_edge.params import SECTIONS, load_params


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.check", description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, required=True, help="params.yaml")
    p.add_argument("--out", type=Path, required=True, help="the checked train section (JSON)")
    return p


def run(args: argparse.Namespace) -> None:
    params = load_params(args.params, require=list(SECTIONS))
    atomic_write_json(args.out, params.train.model_dump(mode="json"))
    print(f"check: {args.params} sets every key of {', '.join(SECTIONS)}")


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
