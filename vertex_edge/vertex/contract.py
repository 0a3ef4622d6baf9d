"""The environment contract Vertex AI gives a custom training job, as plain data.

Vertex AI sets, from the job's ``base_output_directory``:

=============================  ===============================================
``AIP_MODEL_DIR``              ``<base>/model/``: write the exported model here
``AIP_CHECKPOINT_DIR``         ``<base>/checkpoints/``: checkpoints (VMs may restart)
``AIP_TENSORBOARD_LOG_DIR``    ``<base>/logs/``: TensorBoard event files
=============================  ===============================================

and, for every replica, ``CLUSTER_SPEC`` (worker pools ``workerpool0..3``) plus ``TF_CONFIG``
(``chief``/``worker``) when the job is distributed. The ``vertex-local`` backend sets exactly the
same variables (:func:`aip_env`, :func:`local_cluster_envs`), so the trainer cannot tell the
difference. Everything here is pure: no TensorFlow, no environment reads (``env`` is passed in).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vertex_edge.errors import ConfigError, UsageError
from vertex_edge.gcp.files import join, parent

MODEL_DIR_ENV = "AIP_MODEL_DIR"
CHECKPOINT_DIR_ENV = "AIP_CHECKPOINT_DIR"
TENSORBOARD_DIR_ENV = "AIP_TENSORBOARD_LOG_DIR"
TF_CONFIG_ENV = "TF_CONFIG"
CLUSTER_SPEC_ENV = "CLUSTER_SPEC"

# Vertex AI worker pools -> TensorFlow task types
POOL_TO_TASK = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps", "workerpool3": "evaluator"}
TRAINING_TASKS = ("chief", "worker")


def aip_env(base_output_dir: str) -> dict[str, str]:
    """The ``AIP_*`` directories Vertex AI derives from ``base_output_directory``."""
    return {
        MODEL_DIR_ENV: join(base_output_dir, "model") + "/",
        CHECKPOINT_DIR_ENV: join(base_output_dir, "checkpoints") + "/",
        TENSORBOARD_DIR_ENV: join(base_output_dir, "logs") + "/",
    }


@dataclass(frozen=True)
class OutputDirs:
    """Where the trainer writes: the model (required), checkpoints and TensorBoard logs
    (optional) and a report folder (metrics, history; default ``<model dir>/../report``)."""

    model: str
    checkpoints: str | None = None
    tensorboard: str | None = None
    report: str = ""

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        model: str | None = None,
        checkpoints: str | None = None,
        tensorboard: str | None = None,
        report: str | None = None,
    ) -> OutputDirs:
        """Explicit values win over the ``AIP_*`` variables."""
        model_dir = model or env.get(MODEL_DIR_ENV, "").strip()
        if not model_dir:
            raise UsageError(
                f"no model folder: {MODEL_DIR_ENV} is not set and --model-dir was not given",
                hint="Vertex AI sets it from the job's base_output_directory; locally use "
                "'python edge.py train --backend vertex-local'",
            )
        return cls(
            model=model_dir,
            checkpoints=checkpoints or env.get(CHECKPOINT_DIR_ENV, "").strip() or None,
            tensorboard=tensorboard or env.get(TENSORBOARD_DIR_ENV, "").strip() or None,
            report=report or join(parent(model_dir), "report"),
        )


@dataclass(frozen=True)
class Cluster:
    """This replica's place in the job: the training tasks (chief and workers) and its role."""

    spec: dict[str, list[str]] = field(default_factory=dict)
    task_type: str | None = None
    task_index: int = 0

    @property
    def num_workers(self) -> int:
        return sum(len(self.spec.get(t, [])) for t in TRAINING_TASKS) or 1

    @property
    def multi_worker(self) -> bool:
        return self.num_workers > 1

    @property
    def is_chief(self) -> bool:
        """The chief writes outputs: task ``chief``, else ``worker`` 0 when there is no chief."""
        if not self.multi_worker or self.task_type is None:
            return True
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.spec.get("chief")

    @property
    def role(self) -> str:
        return f"{self.task_type or 'chief'}:{self.task_index}"

    def tf_config(self) -> dict[str, Any]:
        return {"cluster": self.spec, "task": {"type": self.task_type, "index": self.task_index}}


def _load_json(env: Mapping[str, str], name: str) -> dict[str, Any] | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must be a JSON object, got {type(data).__name__}")
    return data


def cluster_from_env(env: Mapping[str, str]) -> Cluster:
    """Read ``TF_CONFIG`` (preferred) or Vertex AI's ``CLUSTER_SPEC``; a single replica without either."""
    tf_config = _load_json(env, TF_CONFIG_ENV)
    if tf_config is not None:
        cluster = tf_config.get("cluster") or {}
        task = tf_config.get("task") or {}
        spec = {t: list(cluster[t]) for t in TRAINING_TASKS if cluster.get(t)}
        return _checked(Cluster(spec, task.get("type"), int(task.get("index", 0) or 0)), TF_CONFIG_ENV)
    cluster_spec = _load_json(env, CLUSTER_SPEC_ENV)
    if cluster_spec is not None:
        pools = cluster_spec.get("cluster") or {}
        task = cluster_spec.get("task") or {}
        spec: dict[str, list[str]] = {}
        for pool, addresses in pools.items():
            kind = POOL_TO_TASK.get(pool)
            if kind in TRAINING_TASKS and addresses:
                spec[kind] = list(addresses)
        task_type = POOL_TO_TASK.get(str(task.get("type", "workerpool0")), None)
        return _checked(Cluster(spec, task_type, int(task.get("index", 0) or 0)), CLUSTER_SPEC_ENV)
    return Cluster()


def _checked(cluster: Cluster, source: str) -> Cluster:
    if cluster.multi_worker:
        if cluster.task_type not in TRAINING_TASKS:
            raise ConfigError(
                f"{source}: this replica's task type is {cluster.task_type!r}; this trainer runs 'chief' and "
                "'worker' replicas only (no parameter servers or evaluators)"
            )
        if cluster.task_index >= len(cluster.spec.get(cluster.task_type, [])):
            raise ConfigError(f"{source}: task index {cluster.task_index} is outside the '{cluster.task_type}' list")
    return cluster


def local_cluster_envs(num_replicas: int, ports: list[int], *, host: str = "localhost") -> list[dict[str, str]]:
    """``TF_CONFIG`` and ``CLUSTER_SPEC`` for ``num_replicas`` local processes, shaped like Vertex
    AI's: replica 0 is the chief (``workerpool0``), the others are workers (``workerpool1``)."""
    if num_replicas < 2:
        return [{}]
    if len(ports) < num_replicas:
        raise ValueError("one port per replica is needed")
    addresses = [f"{host}:{p}" for p in ports[:num_replicas]]
    pools = {"workerpool0": addresses[:1], "workerpool1": addresses[1:]}
    tf_cluster = {"chief": addresses[:1], "worker": addresses[1:]}
    envs = []
    for i in range(num_replicas):
        pool, index = ("workerpool0", 0) if i == 0 else ("workerpool1", i - 1)
        task_type = POOL_TO_TASK[pool]
        envs.append(
            {
                CLUSTER_SPEC_ENV: json.dumps(
                    {"cluster": pools, "environment": "cloud", "task": {"type": pool, "index": index}}
                ),
                TF_CONFIG_ENV: json.dumps(
                    {"cluster": tf_cluster, "environment": "cloud", "task": {"type": task_type, "index": index}}
                ),
            }
        )
    return envs
