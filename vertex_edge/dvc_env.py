"""What DVC tells a stage through its environment (verified against dvc 3.67.1's source).

* ``DVC_STAGE`` - the stage being run (``dvc/stage/run.py``: every stage command gets it);
* ``DVC_ROOT`` - the repository root; for a queued experiment DVC points it at the WORKSPACE the
  experiment was queued from, while the stage runs in a temporary clone under
  ``<workspace>/.dvc/tmp/exps/`` (``dvc/repo/experiments/queue/base.py``);
* ``DVC_EXP_NAME`` and ``DVC_EXP_BASELINE_REV`` - set for ``dvc exp run`` (workspace or queued):
  the experiment's name and the commit it is based on.

:func:`workspace_root` is where machine-local state lives (``edge.yaml`` when it is not committed,
the storage root: Sacred runs, registry, DVC store): a queued experiment's temporary clone has
none of the untracked files, and a relative storage root must not land inside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vertex_edge.config import EdgeConfig, load_config

STAGE_ENV = "DVC_STAGE"
ROOT_ENV = "DVC_ROOT"
EXP_NAME_ENV = "DVC_EXP_NAME"
EXP_BASELINE_ENV = "DVC_EXP_BASELINE_REV"
EXEC_TMP = Path(".dvc") / "tmp" / "exps"


def queued_workspace(cwd: Path, env: Mapping[str, str]) -> Path | None:
    """The workspace a queued (temporary-folder) experiment came from; None otherwise."""
    root = env.get(ROOT_ENV)
    if not root:
        return None
    workspace = Path(root).resolve()
    try:
        Path(cwd).resolve().relative_to(workspace / EXEC_TMP)
    except ValueError:
        return None
    return workspace


def workspace_root(cwd: Path, env: Mapping[str, str]) -> Path:
    """``cwd``, or the workspace when ``cwd`` is a queued experiment's temporary clone."""
    return queued_workspace(cwd, env) or Path(cwd)


def dvc_context(cwd: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """``{"experiment", "baseline", "queued", "stage"}`` for the Sacred run's info (nulls outside DVC)."""
    return {
        "experiment": env.get(EXP_NAME_ENV) or None,
        "baseline": env.get(EXP_BASELINE_ENV) or None,
        "queued": queued_workspace(cwd, env) is not None,
        "stage": env.get(STAGE_ENV) or None,
    }


def stage_config(repo: Path, config_path: Path, env: Mapping[str, str]) -> EdgeConfig:
    """edge.yaml for a stage running in ``repo``: there, else the workspace's (a queued experiment's
    clone lacks an uncommitted edge.yaml), else the defaults (a fresh clone before setup)."""
    for path in (config_path if config_path.is_absolute() else repo / config_path,
                 workspace_root(repo, env) / config_path):  # fmt: skip
        if path.exists():
            return load_config(path)
    return EdgeConfig()
