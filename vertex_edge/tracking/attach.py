"""Attach files to a Sacred run after it finished, as Sacred itself stores artifacts.

The ``evaluate`` stage runs after training, in another process: it attaches the confusion matrix
and its metrics to the run named by the model card's ``sacred_run_id``, so the run holds every
figure about its model (``edge.py experiments show`` lists them).

* file store - the file is copied into the run's folder and named in ``run.json``'s ``artifacts``
  (what ``FileStorageObserver.artifact_event`` does);
* MongoDB - the file goes to GridFS as ``artifact://runs/<id>/<name>`` and ``{name, file_id}`` is
  pushed onto the run's ``artifacts`` (what ``MongoObserver.artifact_event`` does).

A run is only written to when it is the run that made the model: its ``info.model.sha256`` must
equal the model's. A card pulled from a teammate's clone names a run id of THEIR store; the run
with that id here is another training, and is left alone.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vertex_edge.fsutil import atomic_write_json
from vertex_edge.tracking.target import TrackingTarget

RUNS = "runs"
#: files Sacred's file store owns in a run folder: never overwritten by an attachment
RESERVED = ("run.json", "config.json", "cout.txt", "metrics.json", "info.json")


@dataclass(frozen=True)
class Attached:
    """What :func:`attach_files` did: the run it wrote to (None when it wrote nothing) and why."""

    run_id: str | None
    names: tuple[str, ...] = ()
    reason: str = ""


def _matches(info: dict[str, Any] | None, sha256: str) -> bool:
    model = (info or {}).get("model") or {}
    return isinstance(model, dict) and model.get("sha256") == sha256


def attach_files(
    target: TrackingTarget, run_id: str | None, files: dict[str, Path], *, model_sha256: str, mongo_client: Any = None
) -> Attached:
    """Attach ``files`` ({artifact name: path}) to run ``run_id`` when it made the model
    ``model_sha256``. Never raises for a missing or foreign run: the reason is returned."""
    if target.kind == "off":
        return Attached(None, reason="tracking is off")
    if not run_id:
        return Attached(None, reason="the model card names no Sacred run (trained with tracking off)")
    present = {name: path for name, path in files.items() if Path(path).is_file() and name not in RESERVED}
    if target.kind == "file":
        assert target.path is not None
        return _attach_file_store(Path(target.path) / str(run_id), str(run_id), present, model_sha256)
    return _attach_mongo(mongo_client, target.db, str(run_id), present, model_sha256)


def _attach_file_store(folder: Path, run_id: str, files: dict[str, Path], sha256: str) -> Attached:
    run_json = folder / "run.json"
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Attached(None, reason=f"run {run_id} is not in {folder.parent}")
    if not _matches(info, sha256):
        return Attached(None, reason=f"run {run_id} in {folder.parent} did not make this model (another store's run?)")
    names = list(run.get("artifacts") or [])
    for name, path in files.items():
        shutil.copyfile(path, folder / f".{name}.tmp")
        (folder / f".{name}.tmp").replace(folder / name)
        if name not in names:
            names.append(name)
    run["artifacts"] = names
    atomic_write_json(run_json, run)
    return Attached(run_id, tuple(files))


def _attach_mongo(client: Any, db_name: str, run_id: str, files: dict[str, Path], sha256: str) -> Attached:
    import gridfs  # deferred: pymongo is only needed with a MongoDB store

    db = client[db_name]
    key: Any = int(run_id) if run_id.isdigit() else run_id
    run = db[RUNS].find_one({"_id": key}, {"info": 1, "artifacts": 1})
    if run is None:
        return Attached(None, reason=f"run {run_id} is not in MongoDB db {db_name}")
    if not _matches(run.get("info"), sha256):
        return Attached(None, reason=f"run {run_id} in MongoDB did not make this model")
    fs = gridfs.GridFS(db)
    kept = [a for a in run.get("artifacts") or [] if a.get("name") not in files]
    for name, path in files.items():
        content_type = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        with open(path, "rb") as fh:
            file_id = fs.put(fh, filename=f"artifact://{RUNS}/{run_id}/{name}", content_type=content_type)
        kept.append({"name": name, "file_id": file_id})
    db[RUNS].update_one({"_id": key}, {"$set": {"artifacts": kept}})
    return Attached(run_id, tuple(files))
