"""DVC stage `train` of the Vertex pipeline (dvc-step2.yaml): train on Vertex AI (a CustomJob), or
here with the same job contract (`--backend vertex-local`), and write the local stage's outputs.

    python -m steps.train_vertex --data-dir data/prepared --params params.yaml \
        --model-dir models/fashion-mnist --metrics metrics/train.json --history reports/train_history.csv \
        --job-record vertex_job.json [--backend vertex|vertex-local]

The backend defaults to $EDGE_TRAIN_BACKEND, else `vertex`. Ctrl-C while a Vertex AI job runs asks
whether to cancel it (`--on-interrupt ask|cancel|keep`, $EDGE_VERTEX_ON_INTERRUPT; off a terminal
`ask` cancels). The run is tracked in Sacred exactly like the local stage, plus the job's name.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from steps import exit_process, run_step
from vertex_edge.training.run import TrainOutputs
from vertex_edge.training.stage import DATA_SOURCE_ENV, LOCAL_OUTPUT_ENV, POLL_ENV, TrainStage, run_train_stage
from vertex_edge.vertex.backend import cancel_policy, plan_job

BACKEND_ENV = "EDGE_TRAIN_BACKEND"
INTERRUPT_ENV = "EDGE_VERTEX_ON_INTERRUPT"


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m steps.train_vertex", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="prepared data (train.npz, test.npz, meta.json)")
    p.add_argument("--params", type=Path, required=True, help="params.yaml (the 'train' section is used)")
    p.add_argument("--model-dir", type=Path, required=True, help="output folder: model.keras, model.onnx, model_card.json")
    p.add_argument("--metrics", type=Path, required=True, help="train metrics (JSON)")
    p.add_argument("--history", type=Path, required=True, help="per-epoch history (CSV, DVC plots)")
    p.add_argument("--job-record", type=Path, required=True, help="the job's record (JSON): name, spec, output URI")
    p.add_argument("--config", type=Path, default=Path("edge.yaml"), help="edge.yaml (gcp section, vertex.training)")
    p.add_argument("--offline", action="store_true", help="do not track this run (same as EDGE_OFFLINE=1)")
    p.add_argument(
        "--backend", choices=("vertex", "vertex-local"), default=env.get(BACKEND_ENV) or "vertex",
        help=f"where the job runs (default ${BACKEND_ENV}, else vertex)",
    )  # fmt: skip
    p.add_argument(
        "--data-source", choices=("staging", "dvc"), default=env.get(DATA_SOURCE_ENV) or "staging",
        help="how the job gets the prepared data: uploaded once under gs://<bucket>/vertex/staging (default) "
        "or the DVC remote's URLs (needs 'dvc push')",
    )  # fmt: skip
    p.add_argument("--attach", default=None, metavar="JOB", help="wait for an existing job instead of submitting one")
    p.add_argument("--replicas", type=int, default=None, help="replica count (default edge.yaml vertex.training)")
    p.add_argument(
        "--local-output", default=env.get(LOCAL_OUTPUT_ENV) or None,
        help="vertex-local: base folder (or gs:// on a GCS emulator) for job outputs (default <storage root>/vertex-local/jobs)",
    )  # fmt: skip
    p.add_argument(
        "--on-interrupt", choices=("ask", "cancel", "keep"), default=env.get(INTERRUPT_ENV) or "ask",
        help="Ctrl-C while the job runs: ask (on a terminal; cancel otherwise), cancel it, or keep it running",
    )  # fmt: skip
    p.add_argument("--poll-seconds", type=float, default=float(env.get(POLL_ENV) or 30), help="state polling interval")
    p.add_argument("--dry-run", action="store_true", help="print the job spec as JSON; submit nothing")
    return p


def stage(args: argparse.Namespace) -> TrainStage:
    return TrainStage(
        repo=Path.cwd(), config_path=args.config, data_dir=args.data_dir, params_path=args.params,
        outputs=TrainOutputs(args.model_dir, args.metrics, args.history), offline=args.offline,
        backend=args.backend, job_record=args.job_record, data_source=args.data_source, attach=args.attach,
        replicas=args.replicas, local_output=args.local_output, poll_s=args.poll_seconds,
    )  # fmt: skip


def run(args: argparse.Namespace) -> None:
    train = stage(args)
    if args.dry_run:
        spec, _ = plan_job(train.vertex_options(train.config()), files=None, upload=False)
        print(json.dumps(spec.to_json(), indent=2))
        return
    run_train_stage(train, echo=lambda line: print(line, flush=True), confirm_cancel=cancel_policy(args.on_interrupt))


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
