"""The ``vertex-local`` backend: run a CustomJob spec here, with Vertex AI's environment contract.

Each replica of the spec's worker pools is the container's command (``python -m
vertex_edge.vertex.task`` + args) run as a subprocess through :func:`vertex_edge.proc.run`, with
the container's env plus what Vertex AI would set: ``AIP_MODEL_DIR``, ``AIP_CHECKPOINT_DIR``,
``AIP_TENSORBOARD_LOG_DIR`` under the spec's ``base_output_directory`` (a local folder, or a
``gs://`` bucket on a GCS emulator when ``STORAGE_EMULATOR_HOST`` is set) and, for several
replicas, ``CLUSTER_SPEC``/``TF_CONFIG`` on localhost ports. Machine and accelerator types are
ignored: the trainer uses whatever this machine has.

The chief's output goes to this terminal as it runs; other replicas' output is shown when they
fail. ``job.json`` (the spec) is kept in the job's folder so ``--attach NAME`` can run the same
job again: it resumes from the job's last checkpoint.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vertex_edge import proc
from vertex_edge.errors import ExternalToolError, UsageError
from vertex_edge.fsutil import atomic_write_json
from vertex_edge.vertex.contract import aip_env, local_cluster_envs
from vertex_edge.vertex.job import JobSpec
from vertex_edge.vertex.submit import CANCELLED, FAILED, SUCCEEDED, JobStatus

log = logging.getLogger(__name__)

SPEC_FILE = "job.json"
NAME_PREFIX = "local/"


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports that were free a moment ago (for the replicas' gRPC servers)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(int(s.getsockname()[1]))
    finally:
        for s in sockets:
            s.close()
    return ports


@dataclass
class Replica:
    label: str  # e.g. workerpool0-0
    argv: list[str]
    env: dict[str, str]
    chief: bool


@dataclass
class LocalJobs:
    """Runs jobs as local subprocesses; ``jobs_root`` keeps each job's ``job.json``."""

    jobs_root: Path
    cwd: Path
    env: Mapping[str, str]
    timeout_s: float | None = None
    python: str = sys.executable
    runner: Callable[..., Any] = proc.run
    kind: str = "vertex-local"
    _status: dict[str, JobStatus] = field(default_factory=dict)

    # --- JobBackend ------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> str:
        name = NAME_PREFIX + spec.display_name
        atomic_write_json(self._folder(name) / SPEC_FILE, spec.to_json())
        self._run(name, spec)
        return name

    def attach(self, name: str) -> JobSpec:
        path = self._folder(name) / SPEC_FILE
        try:
            spec = JobSpec.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UsageError(
                f"no vertex-local job {name!r} (no {path})",
                hint=f"job names are the folders under {self.jobs_root}",
            ) from None
        self._run(name, spec)
        return spec

    def status(self, name: str) -> JobStatus:
        return self._status.get(name) or JobStatus(name=name, state=CANCELLED, error="not run in this process")

    def cancel(self, name: str) -> None:
        """Nothing to do: local replicas stop with this process (Ctrl-C reaches them too)."""

    def links(self, name: str) -> dict[str, str]:
        spec_path = self._folder(name) / SPEC_FILE
        return {"logs": "this terminal (vertex-local)", "job": str(spec_path)}

    # --- running -----------------------------------------------------------------------
    def _folder(self, name: str) -> Path:
        short = name.removeprefix(NAME_PREFIX)
        if not short or "/" in short or short.startswith("."):
            raise UsageError(f"invalid vertex-local job name {name!r}")
        return self.jobs_root / short

    def replicas(self, spec: JobSpec) -> list[Replica]:
        """One process per replica, chief first, with the environment Vertex AI would give it."""
        count = spec.replica_count
        cluster_envs = local_cluster_envs(count, free_ports(count) if count > 1 else [])
        out: list[Replica] = []
        for p, pool in enumerate(spec.worker_pool_specs):
            container = pool["container_spec"]
            command = [self.python if i == 0 and c == "python" else c for i, c in enumerate(container.get("command") or [])]
            argv = [*command, *container.get("args", [])]
            container_env = {e["name"]: e["value"] for e in container.get("env", [])}
            for r in range(int(pool.get("replica_count", 1))):
                env = {**self.env, **container_env, **aip_env(spec.output_uri), **cluster_envs[len(out)]}
                out.append(Replica(label=f"workerpool{p}-{r}", argv=argv, env=env, chief=not out))
        return out

    def _run(self, name: str, spec: JobSpec) -> None:
        replicas = self.replicas(spec)
        if len(replicas) > 1:
            log.info("vertex-local: %d replicas (MultiWorkerMirroredStrategy on localhost)", len(replicas))
        try:
            results = self._run_all(replicas)
        except KeyboardInterrupt:
            self._status[name] = JobStatus(name=name, state=CANCELLED, error="interrupted", output_uri=spec.output_uri)
            log.warning("vertex-local job %s interrupted; its checkpoint is kept", name)
            raise
        failed = [(r, rc, tail) for r, (rc, tail) in zip(replicas, results, strict=True) if rc != 0]
        if failed:
            error = "; ".join(
                f"replica {replica.label} exited with code {rc}" + (f":\n{tail}\n" if tail else "")
                for replica, rc, tail in failed
            )
            self._status[name] = JobStatus(name=name, state=FAILED, error=error, output_uri=spec.output_uri)
        else:
            self._status[name] = JobStatus(name=name, state=SUCCEEDED, output_uri=spec.output_uri)

    def _run_one(self, replica: Replica) -> tuple[int, str]:
        try:
            result = self.runner(
                replica.argv, cwd=self.cwd, env=replica.env, check=False, capture=not replica.chief, timeout=self.timeout_s
            )
        except ExternalToolError as exc:  # not found, or past the timeout
            return 1, exc.message
        tail = ""
        if result.returncode != 0 and result.stderr:
            tail = "\n".join(result.stderr.decode("utf-8", "replace").strip().splitlines()[-15:])
        return int(result.returncode), tail

    def _run_all(self, replicas: list[Replica]) -> list[tuple[int, str]]:
        if len(replicas) == 1:
            return [self._run_one(replicas[0])]
        results: list[tuple[int, str]] = [(1, "did not finish")] * len(replicas)

        def work(i: int) -> None:
            results[i] = self._run_one(replicas[i])

        threads = [threading.Thread(target=work, args=(i,), name=r.label, daemon=True) for i, r in enumerate(replicas)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results
