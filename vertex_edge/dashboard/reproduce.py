"""The exact commands that reproduce a run: its commit, its data, its pipeline and every param.

The params are given in full with ``dvc exp run -S`` (not only those that differ from
``params.yaml``), so the commands do not depend on what the checked-out ``params.yaml`` holds.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    command: str
    note: str

    def as_dict(self) -> dict[str, str]:
        return {"command": self.command, "note": self.note}


def param_value(value: Any) -> str:
    """A param as ``dvc exp run -S`` (Hydra override syntax) reads it back: YAML-like scalars and lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def reproduce_steps(summary: dict[str, Any]) -> list[Step]:
    """Shell commands, in order, with what each is for. ``summary`` is :func:`~vertex_edge.tracking.runs.summarize`'s."""
    steps: list[Step] = []
    commit = summary.get("commit")
    if commit:
        note = "the run's code"
        if summary.get("dirty"):
            note += " - the run had uncommitted changes, which this commit does not hold"
        steps.append(Step(f"git checkout {shlex.quote(commit)}", note))
    else:
        steps.append(Step("# (no git commit recorded)", "the run's code is unknown: start from the current checkout"))
    if summary.get("dvc_experiment"):
        name = shlex.quote(summary["dvc_experiment"])
        steps.append(
            Step(f"# or: dvc exp apply {name}", "the DVC experiment's workspace (code + params), if its refs are here")
        )
    data = summary.get("data_version")
    steps.append(
        Step(
            "dvc pull",
            f"the data that commit tracks (data version {data[:12]})" if data else "the data that commit tracks",
        )
    )
    backend = summary.get("backend")
    env = ""
    if backend in ("vertex", "vertex-local"):
        steps.append(Step("python edge.py pipeline use vertex", "the run trained as a Vertex AI job (dvc-step2.yaml)"))
        if backend == "vertex-local":
            env = "EDGE_TRAIN_BACKEND=vertex-local "
    sets = " ".join(
        f"-S {shlex.quote(f'train.{k}={param_value(v)}')}" for k, v in sorted(summary.get("params", {}).items())
    )
    acc = summary.get("test_accuracy")
    expect = f"; expect test accuracy near {acc:.4f}" if isinstance(acc, float) else ""
    steps.append(
        Step(f"{env}dvc exp run {sets}".rstrip(), f"prepare, train and evaluate with every param of the run{expect}")
    )
    return steps
