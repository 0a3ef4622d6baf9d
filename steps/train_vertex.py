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
import os
import sys
from pathlib import Path

from steps import exit_process, run_step

BACKEND_ENV = "EDGE_TRAIN_BACKEND"
DATA_SOURCE_ENV = "EDGE_VERTEX_DATA_SOURCE"
INTERRUPT_ENV = "EDGE_VERTEX_ON_INTERRUPT"
LOCAL_OUTPUT_ENV = "EDGE_VERTEX_LOCAL_OUTPUT"
POLL_ENV = "EDGE_VERTEX_POLL_S"


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


def options(args: argparse.Namespace):  # noqa: ANN201 - StageOptions
    from vertex_edge.config import EdgeConfig, load_config
    from vertex_edge.trainer import TrainOutputs
    from vertex_edge.vertex.stage import StageOptions

    config = load_config(args.config) if args.config.exists() else EdgeConfig()
    return StageOptions(
        repo=Path.cwd(),
        config=config,
        data_dir=args.data_dir,
        params_path=args.params,
        outputs=TrainOutputs(model_dir=args.model_dir, metrics=args.metrics, history=args.history),
        job_record=args.job_record,
        backend=args.backend,
        data_source=args.data_source,
        attach=args.attach,
        replicas=args.replicas,
        local_output=args.local_output,
        poll_s=args.poll_seconds,
    )


def confirm_cancel(policy: str):  # noqa: ANN201 - Callable[[str], bool]
    def ask(name: str) -> bool:
        if policy in ("cancel", "keep"):
            return policy == "cancel"
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return True  # nobody to ask (CI stopped): do not leave a paid job running
        answer = input(f"\nCancel the training job {name}? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return ask


def run(args: argparse.Namespace) -> None:
    import json

    from vertex_edge.gcp.sacred import tracking_environment
    from vertex_edge.layout import LocalLayout
    from vertex_edge.tracking import resolve_tracking
    from vertex_edge.vertex.stage import plan_job, run_stage

    opts = options(args)
    if args.dry_run:
        spec, _ = plan_job(opts, files=None, upload=False)
        print(json.dumps(spec.to_json(), indent=2))
        return
    backend, files = make_backend(opts)
    config = opts.config
    # exactly like the local stage: on the gcp target a port-forward to Sacred's MongoDB stays open
    with tracking_environment(config, os.environ, offline=args.offline) as env:
        tracking = resolve_tracking(
            enabled=config.tracking.enabled,
            mongodb_url=config.tracking.mongodb_url,
            mongodb_db=config.tracking.mongodb_db,
            file_store=LocalLayout.from_config(config, opts.repo).experiments,
            env=env,
            offline=args.offline,
        )
        run_stage(
            opts, backend=backend, files=files, tracking=tracking,
            echo=lambda line: print(line, flush=True), confirm_cancel=confirm_cancel(args.on_interrupt),
        )  # fmt: skip


def make_backend(opts):  # noqa: ANN001, ANN201 - (JobBackend, Files), built here at the edge
    from vertex_edge.vertex.uris import Files

    if opts.backend == "vertex-local":
        from vertex_edge.tracking import MONGO_ENV
        from vertex_edge.vertex.local import LocalJobs

        # the trainer gets Vertex AI's contract, not this process's secrets (a MongoDB URL with its password)
        env = {k: v for k, v in os.environ.items() if k != MONGO_ENV}
        return LocalJobs(jobs_root=opts.local_jobs_root(), cwd=opts.repo, env=env), Files()
    from google.cloud import aiplatform

    from vertex_edge.gcp.clients import GcpClients
    from vertex_edge.vertex.job import require_gcp
    from vertex_edge.vertex.submit import VertexJobs, artifact_registry_check

    gcp = require_gcp(opts.config)
    clients = GcpClients.connect(gcp.project, gcp.region)
    backend = VertexJobs(
        aiplatform, project=gcp.project, location=gcp.region, credentials=clients.credentials,
        image_check=artifact_registry_check(clients.artifact_registry),
    )  # fmt: skip
    return backend, Files(clients.storage)


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
