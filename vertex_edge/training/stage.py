"""The ``train`` stage: what ``python -m steps.train``, ``python -m steps.train_vertex`` and
``python edge.py train`` all run, with the pipeline's paths.

:func:`run_train_stage` loads ``edge.yaml`` and ``params.yaml`` once (every ``train`` key must be
set), takes the workspace's training lock (:mod:`vertex_edge.training.guard`: one training per
workspace; under DVC the training also stops when its ``dvc`` parent is killed), removes what a
killed earlier run left behind, opens the tracking environment (on the gcp target a port-forward
to Sacred's MongoDB stays open while training runs), picks the backend (this machine, a Vertex AI
job, or the same job run here) and runs the ONE tracked training
(:func:`vertex_edge.training.run.run_training`).

In a queued experiment (``dvc exp run --queue``) the stage runs in DVC's temporary clone: the
machine-local state (``edge.yaml`` when it is not committed, a relative storage root) is the
workspace's (:func:`vertex_edge.dvc_env.workspace_root`), so its Sacred run lands in the same store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vertex_edge.artifact import ModelArtifact
from vertex_edge.config import EdgeConfig
from vertex_edge.dvc_env import STAGE_ENV, dvc_context, stage_config, workspace_root
from vertex_edge.errors import UsageError
from vertex_edge.gcp.sacred import tracking_environment
from vertex_edge.gitinfo import git_info
from vertex_edge.layout import LocalLayout
from vertex_edge.params import load_params
from vertex_edge.stage_files import clean_stale_temps
from vertex_edge.tracking.target import resolve_tracking
from vertex_edge.training.guard import train_lock, watch_parent
from vertex_edge.training.run import Echo, LocalBackend, TrainingBackend, TrainOutputs, run_training
from vertex_edge.vertex.backend import VertexOptions, make_vertex_backend
from vertex_edge.vertex.submit import CANCEL_WAIT_S

Backend = Literal["local", "vertex", "vertex-local"]
BACKENDS: tuple[Backend, ...] = ("local", "vertex", "vertex-local")
#: the train stage's paths, as dvc-step1.yaml / dvc-step2.yaml spell them (tests/unit/test_pipelines.py checks)
DATA_DIR = Path("data/prepared")
PARAMS_FILE = Path("params.yaml")
OUTPUTS = TrainOutputs(Path("models/fashion-mnist"), Path("metrics/train.json"), Path("reports/train_history.csv"))
JOB_RECORD = Path("vertex_job.json")
#: environment defaults of the Vertex backends' options (the flags win)
DATA_SOURCE_ENV = "EDGE_VERTEX_DATA_SOURCE"
LOCAL_OUTPUT_ENV = "EDGE_VERTEX_LOCAL_OUTPUT"
POLL_ENV = "EDGE_VERTEX_POLL_S"


@dataclass
class TrainStage:
    """One training: where the inputs and outputs are, how it is tracked, where it runs."""

    repo: Path
    config_path: Path
    data_dir: Path = DATA_DIR
    params_path: Path = PARAMS_FILE
    outputs: TrainOutputs = OUTPUTS
    offline: bool = False
    backend: Backend = "local"
    # the Vertex backends only
    job_record: Path = JOB_RECORD
    data_source: Literal["staging", "dvc"] = "staging"
    attach: str | None = None
    replicas: int | None = None
    local_output: str | None = None
    poll_s: float = 30.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        if self.backend == "local" and (self.attach or self.replicas):
            raise UsageError("--attach and --replicas apply to the vertex and vertex-local backends")

    @classmethod
    def vertex_env_defaults(cls, env: Mapping[str, str]) -> dict[str, Any]:
        """The Vertex options the environment sets (``EDGE_VERTEX_*``), for flags left unset."""
        out: dict[str, Any] = {}
        if env.get(DATA_SOURCE_ENV):
            out["data_source"] = env[DATA_SOURCE_ENV]
        if env.get(LOCAL_OUTPUT_ENV):
            out["local_output"] = env[LOCAL_OUTPUT_ENV]
        if env.get(POLL_ENV):
            try:
                out["poll_s"] = float(env[POLL_ENV])
            except ValueError:
                raise UsageError(f"{POLL_ENV}={env[POLL_ENV]!r}: expected a number of seconds") from None
        return out

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.repo / p

    @property
    def workspace(self) -> Path:
        """Where machine-local state lives: the repo, or for a queued experiment its workspace."""
        return workspace_root(self.repo, os.environ)

    def config(self) -> EdgeConfig:
        """edge.yaml (here, else the workspace's), or the defaults where there is none yet (a fresh
        clone before setup)."""
        return stage_config(self.repo, self.config_path, os.environ)

    def vertex_options(self, config: EdgeConfig) -> VertexOptions:
        return VertexOptions(
            repo=self.repo, config=config, data_dir=self.path(self.data_dir), params_path=self.path(self.params_path),
            job_record=self.path(self.job_record), backend=self.backend,  # type: ignore[arg-type]
            data_source=self.data_source, attach=self.attach, replicas=self.replicas, local_output=self.local_output,
            poll_s=self.poll_s,
        )  # fmt: skip


def run_train_stage(
    stage: TrainStage, *, echo: Echo, confirm_cancel: Callable[[str], bool] = lambda job: True
) -> ModelArtifact:
    """Train as the stage does; return the model folder written to ``stage.outputs.model_dir``."""
    config = stage.config()
    params = load_params(stage.path(stage.params_path), require=["train", "monitor.ood"])
    outputs = TrainOutputs(*(stage.path(p) for p in (stage.outputs.model_dir, stage.outputs.metrics, stage.outputs.history)))
    backend: TrainingBackend
    if stage.backend == "local":
        backend = LocalBackend(
            stage.path(stage.data_dir), config.model.name, git_info(stage.repo), ood_fpr=params.monitor.ood.fpr
        )
    else:
        backend = make_vertex_backend(stage.vertex_options(config), echo=echo, confirm_cancel=confirm_cancel)
    with train_lock(outputs.model_dir):
        for left in clean_stale_temps([outputs.model_dir, outputs.metrics, outputs.history], min_age_s=0):
            echo(f"removed {left.name}, left behind by an interrupted run")
        grace_s = 60.0 if stage.backend == "local" else CANCEL_WAIT_S + 60.0  # Vertex: cancel, watch it stop
        stop_watching = watch_parent(grace_s=grace_s) if os.environ.get(STAGE_ENV) else (lambda: None)
        try:
            with tracking_environment(config, os.environ, offline=stage.offline) as env:
                tracking = resolve_tracking(
                    enabled=config.tracking.enabled,
                    mongodb_url=config.tracking.mongodb_url,
                    mongodb_db=config.tracking.mongodb_db,
                    file_store=LocalLayout.from_config(config, stage.workspace).experiments,
                    env=env,
                    offline=stage.offline,
                )
                return run_training(
                    backend=backend, data_dir=stage.path(stage.data_dir), params=params.train, outputs=outputs,
                    tracking=tracking, model_name=config.model.name, repo=stage.repo, echo=echo,
                    dvc=dvc_context(stage.repo, os.environ),
                )  # fmt: skip
        finally:
            stop_watching()
