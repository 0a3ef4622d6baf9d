"""A failed DVC stage loses nothing, and leaves nothing behind.

DVC removes a stage's outputs before it runs the stage's command. When the command then fails,
:func:`restore_outputs` puts the previous outputs back with ``dvc checkout <stage> --force``: every
output of this project's stages is in DVC's cache (metrics and reports included), so dvc.lock's
last recorded outputs come back whole. It runs inside the failing stage (DVC releases its repo
lock while a stage command runs), so the user finds the previous model, metrics and history
where they were.

Outputs are written atomically (:mod:`vertex_edge.fsutil`): a temporary ``.<name>.*.tmp`` beside
the target, renamed at the end. A process killed mid-write leaves that temporary behind; it is
git-ignored (``.gitignore``) and :func:`clean_stale_temps` removes it on the next run.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import yaml

from vertex_edge import dvc
from vertex_edge.errors import ExternalToolError

LOCK_FILE = "dvc.lock"


def stale_temps(outputs: Iterable[Path], *, min_age_s: float = 30.0, now: float | None = None) -> list[Path]:
    """Temporaries of atomic writes to ``outputs`` (siblings ``.<name>.*.tmp*``, ``.<name>.old-*``)
    older than ``min_age_s``: a live writer renames its temporary within seconds."""
    now = time.time() if now is None else now
    found: list[Path] = []
    for out in outputs:
        out = Path(out)
        if not out.parent.is_dir():
            continue
        for pattern in (f".{out.name}.*.tmp*", f".{out.name}.old-*"):
            for p in out.parent.glob(pattern):
                try:
                    age = now - p.lstat().st_mtime
                except OSError:
                    continue
                if age >= min_age_s:
                    found.append(p)
    return sorted(set(found))


def clean_stale_temps(outputs: Iterable[Path], *, min_age_s: float = 30.0) -> list[Path]:
    """Remove :func:`stale_temps`; return what was removed."""
    removed = []
    for p in stale_temps(outputs, min_age_s=min_age_s):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def recorded(repo: Path, stage: str) -> bool:
    """Whether dvc.lock records outputs of ``stage`` (False on a first run)."""
    try:
        data = yaml.safe_load((Path(repo) / LOCK_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    entry = (data.get("stages") or {}).get(stage) or {}
    return bool(entry.get("outs"))


def restore_outputs(repo: Path, stage: str) -> str:
    """After ``stage`` failed: check its previous outputs out again; say what happened (one line)."""
    if not recorded(repo, stage):
        return f"stage '{stage}' has no earlier outputs in {LOCK_FILE}: nothing to restore"
    try:
        dvc.dvc(Path(repo), "checkout", stage, "--force", "--quiet")
    except ExternalToolError as exc:
        return (
            f"could not restore the previous outputs of '{stage}' ({exc.message.splitlines()[0]}): "
            f"run 'dvc checkout {stage}'"
        )
    return f"the previous outputs of '{stage}' (as {LOCK_FILE} records them) are back: 'dvc checkout {stage}' restored them"
