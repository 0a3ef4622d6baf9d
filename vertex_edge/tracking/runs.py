"""Reading Sacred runs back, from the file store or MongoDB, for ``edge.py experiments`` and the
experiments UI - one reader for both.

A run comes back as Sacred's own document (``run.json`` or the MongoDB ``runs`` entry) with
``config``, ``info`` and ``metrics`` merged in, ``_id`` as a string, and ``_problems``: the parts
that could not be read. A corrupt or half-written file (Sacred rewrites ``run.json`` in place on
every heartbeat) never raises: the file store keeps the last good copy, or retries once, or
reports the run as CORRUPT.

:func:`display_status` is the ONE place that decides the status a run is shown with (a RUNNING
run whose heartbeat stopped is DEAD); :func:`summarize` gives every figure ``experiments list``
and the UI show for one run.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

#: Sacred's ``SETTINGS.DEFAULT_BEAT_INTERVAL`` (seconds between heartbeats; not imported: Sacred is heavy).
BEAT_INTERVAL_S = 10.0
#: A RUNNING run with no heartbeat for this many intervals is shown as DEAD (120 s: Omniboard's "probably dead").
DEAD_AFTER_BEATS = 12
DEAD_AFTER_S = BEAT_INTERVAL_S * DEAD_AFTER_BEATS

TERMINAL = ("COMPLETED", "FAILED", "INTERRUPTED", "TIMED_OUT")
STATUSES = ("RUNNING", "QUEUED", *TERMINAL, "DEAD", "CORRUPT")
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
RUN_FILES = ("run.json", "config.json", "info.json", "metrics.json")
#: A run changed when these did: Sacred writes config.json once, rewrites run.json on every event
#: after metrics.json, and info.json after run.json within a heartbeat.
WATCHED = ("run.json", "info.json")
OUTPUT_TAIL_BYTES = 256 * 1024
ARTIFACT_MAX_BYTES = 64 * 1024 * 1024


class ExperimentStore(Protocol):
    def list_runs(self) -> list[dict[str, Any]]: ...

    def get_run(self, run_id: str) -> dict[str, Any] | None: ...

    def read_artifact(self, run_id: str, name: str) -> bytes | None: ...


# ------------------------------------------------------------------------------ the file store


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(value, None), or (None, why) for a file that is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_bytes()), None
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8 (a half-written file)
        return None, f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"


def _stat_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class FileExperimentStore:
    """Reads runs written by Sacred's FileStorageObserver (one folder per run id).

    Parsed runs are cached by the files' mtime and size, so listing a thousand runs again costs
    only the ``stat`` calls; a file caught half-written falls back to the last good copy."""

    def __init__(self, path: Path, *, retry_delay_s: float = 0.02) -> None:
        self.path = Path(path)
        self.retry_delay_s = retry_delay_s
        self._cache: dict[str, tuple[tuple[Any, ...], dict[str, Any], bool]] = {}
        self._lock = threading.Lock()

    def _folders(self) -> list[str]:
        """The run ids (folder names), in order."""
        try:
            entries = list(os.scandir(self.path))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted((e.name for e in entries if e.name.isdigit() and e.is_dir()), key=int)

    def _load(self, folder: Path, previous: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
        """(the run, whether every file present was read): a file that fails to read takes the
        previous good copy's part; without one it is retried once, then reported in ``_problems``."""
        parts: dict[str, Any] = {}
        problems: list[str] = []
        whole = True
        for name in RUN_FILES:
            key = name.removesuffix(".json")
            value, why = _read_json(folder / name)
            if why not in (None, "missing") and previous is None and self.retry_delay_s:
                time.sleep(self.retry_delay_s)  # caught mid-write: the observer finishes in microseconds
                value, why = _read_json(folder / name)
            if why is None and not isinstance(value, dict):
                why = f"not a JSON object ({type(value).__name__})"
            if why is None:
                parts[key] = value
                continue
            if why == "missing" and key in ("info", "metrics"):  # written only once there is something
                parts[key] = {}
                continue
            whole = False
            if previous is not None:
                parts[key] = previous if key == "run" else previous.get(key, {})
                continue
            problems.append(f"{name} is {why}")
            parts[key] = {}
        run = {k: v for k, v in parts["run"].items() if k not in ("config", "info", "metrics") and k[:1] != "_"}
        run.update(_id=folder.name, config=parts["config"], info=parts["info"], metrics=parts["metrics"])
        run["_problems"] = problems
        if not parts["run"]:
            run["status"] = "CORRUPT"
        run["_evaluation"] = self._evaluation(folder, run)
        return run, whole

    def _evaluation(self, folder: Path, run: dict[str, Any]) -> dict[str, Any] | None:
        name = find_artifact(run, "evaluation")
        if name is None:
            return None
        value, why = _read_json(folder / name)
        return value if why is None and isinstance(value, dict) else None

    def _run(self, run_id: str) -> dict[str, Any]:
        base = f"{self.path}{os.sep}{run_id}{os.sep}"  # plain strings: 1,000 runs are 2,000 stat calls
        sig = tuple(_stat_key(base + name) for name in WATCHED)
        cached = self._cache.get(run_id)  # (a dict read is atomic; writes take the lock)
        if cached is not None and cached[0] == sig:
            return cached[1]
        good = cached[1] if cached is not None and cached[2] else None
        run, whole = self._load(self.path / run_id, good)
        if whole or good is None:  # a run caught mid-write is read again next time
            with self._lock:
                self._cache[run_id] = (sig, run, whole)
        return run

    def list_runs(self) -> list[dict[str, Any]]:
        return [self._run(run_id) for run_id in self._folders()]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        folder = self.path / run_id
        if not run_id.isdigit() or not folder.is_dir():
            return None
        run = dict(self._run(run_id))
        run["captured_out"] = _tail_text(folder / "cout.txt")
        return run

    def read_artifact(self, run_id: str, name: str) -> bytes | None:
        run = self.get_run(run_id) if run_id.isdigit() else None
        if run is None or name not in artifact_names(run) or Path(name).name != name or name in (".", ".."):
            return None
        path = self.path / run_id / name
        try:
            if path.stat().st_size > ARTIFACT_MAX_BYTES:
                return None
            return path.read_bytes()
        except OSError:
            return None


def _tail_text(path: Path, limit: int = OUTPUT_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text if size <= limit else "[... earlier output cut ...]\n" + text.split("\n", 1)[-1]


# ------------------------------------------------------------------------------ MongoDB

#: What listing runs leaves out of each document (big, and shown only on the run's own page).
LIST_PROJECTION = {"captured_out": 0, "experiment.sources": 0, "meta": 0, "host.ENV": 0, "resources": 0}


class MongoExperimentStore:
    """Reads runs from Sacred's MongoDB collections (``runs``, ``metrics`` and GridFS ``fs``)."""

    def __init__(self, client: Any, db: str) -> None:
        self.db = client[db]
        self._evaluations: dict[str, dict[str, Any] | None] = {}  # by GridFS file id: files never change

    def _metrics_for(self, run_ids: list[Any]) -> dict[Any, dict[str, Any]]:
        out: dict[Any, dict[str, Any]] = {}
        for m in self.db.metrics.find({"run_id": {"$in": run_ids}}):
            out.setdefault(m.get("run_id"), {})[str(m.get("name"))] = {
                "steps": m.get("steps", []), "values": m.get("values", []), "timestamps": m.get("timestamps", []),
            }  # fmt: skip
        return out

    def _finish(self, run: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
        run["metrics"] = metrics
        for key in ("config", "info"):
            if not isinstance(run.get(key), dict):
                run[key] = {}
        run["_id"] = str(run["_id"])
        run["_problems"] = []
        run["_evaluation"] = self._evaluation(run)
        return run

    def list_runs(self) -> list[dict[str, Any]]:
        runs = list(self.db.runs.find({}, LIST_PROJECTION).sort("_id", 1))
        metrics = self._metrics_for([r["_id"] for r in runs])
        return [self._finish(r, metrics.get(r["_id"], {})) for r in runs]

    def _find(self, run_id: str) -> dict[str, Any] | None:
        key: Any = int(run_id) if run_id.isdigit() else run_id
        return self.db.runs.find_one({"_id": key})

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        run = self._find(run_id)
        if run is None:
            return None
        return self._finish(run, self._metrics_for([run["_id"]]).get(run["_id"], {}))

    def _gridfs(self) -> Any:
        import gridfs  # deferred: part of pymongo, which only the MongoDB store needs

        return gridfs.GridFS(self.db)

    def _file(self, run: dict[str, Any], name: str) -> bytes | None:
        for entry in run.get("artifacts") or []:
            if isinstance(entry, dict) and entry.get("name") == name and entry.get("file_id") is not None:
                try:
                    handle = self._gridfs().get(entry["file_id"])
                    return handle.read() if handle.length <= ARTIFACT_MAX_BYTES else None
                except Exception:  # noqa: BLE001 - a missing or broken GridFS file is an absent artifact
                    return None
        return None

    def _evaluation(self, run: dict[str, Any]) -> dict[str, Any] | None:
        name = find_artifact(run, "evaluation")
        if name is None:
            return None
        file_id = next(str(e.get("file_id")) for e in run["artifacts"] if isinstance(e, dict) and e.get("name") == name)
        if file_id not in self._evaluations:
            data = self._file(run, name)
            try:
                value = json.loads(data) if data is not None else None
            except ValueError:
                value = None
            self._evaluations[file_id] = value if isinstance(value, dict) else None
        return self._evaluations[file_id]

    def read_artifact(self, run_id: str, name: str) -> bytes | None:
        run = self._find(run_id)
        return self._file(run, name) if run is not None else None


# ------------------------------------------------------------------------------ one run's figures


def artifact_names(run: dict[str, Any]) -> list[str]:
    """The names of a run's artifacts (file store: names; MongoDB: ``{name, file_id}`` entries)."""
    names: list[str] = []
    entries = run.get("artifacts")
    for entry in entries if isinstance(entries, list) else []:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str) and name:
            names.append(name)
    return names


def artifact_role(name: str) -> str:
    """What an artifact is, from its name: ``history``, ``model_card``, ``confusion_png``,
    ``confusion_csv``, ``evaluation`` (the evaluate stage's metrics JSON) or ``other``."""
    low = name.lower()
    if low.endswith("model_card.json"):
        return "model_card"
    if "confusion" in low and low.endswith(".png"):
        return "confusion_png"
    if "confusion" in low and low.endswith(".csv"):
        return "confusion_csv"
    if "history" in low and low.endswith(".csv"):
        return "history"
    if "evaluat" in low and low.endswith(".json"):
        return "evaluation"
    return "other"


def find_artifact(run: dict[str, Any], role: str) -> str | None:
    """The last artifact of ``role`` attached to the run, if any."""
    found = [n for n in artifact_names(run) if artifact_role(n) == role]
    return found[-1] if found else None


def parse_time(value: Any) -> datetime | None:
    """A Sacred timestamp (ISO text in the file store, a naive UTC datetime in MongoDB), in UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def display_status(run: dict[str, Any], *, now: datetime, dead_after_s: float = DEAD_AFTER_S) -> str:
    """The ONE status a run is shown with: Sacred's, except DEAD for a RUNNING run whose heartbeat
    (or start, before the first beat) is older than ``dead_after_s``, and CORRUPT for a run whose
    ``run.json`` could not be read."""
    status = run.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        return "CORRUPT"
    if status == "RUNNING":
        last = parse_time(run.get("heartbeat")) or parse_time(run.get("start_time"))
        if last is None or (now - last).total_seconds() > dead_after_s:
            return "DEAD"
    return status


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def metric_series(run: dict[str, Any], name: str) -> tuple[list[int], list[float | None]]:
    """(steps, values) of one logged metric; values that are not finite numbers become None."""
    entry = (run.get("metrics") or {}).get(name)
    if not isinstance(entry, dict):
        return [], []
    steps, values = entry.get("steps") or [], entry.get("values") or []
    if not isinstance(steps, list) or not isinstance(values, list):
        return [], []
    pairs = [(s, _number(v)) for s, v in zip(steps, values, strict=False) if isinstance(s, int)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys (``augment.flip``); lists stay values."""
    if not isinstance(config, dict):
        return {prefix.rstrip("."): config} if prefix else {}
    out: dict[str, Any] = {}
    for key in sorted(config, key=str):
        value = config[key]
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _git(run: dict[str, Any]) -> dict[str, Any]:
    git = run["info"].get("git")
    if isinstance(git, dict) and git:
        return git
    repos = (run.get("experiment") or {}).get("repositories") or []
    if repos and isinstance(repos[0], dict):
        return {"commit": repos[0].get("commit"), "dirty": repos[0].get("dirty")}
    return {}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def summarize(
    run: dict[str, Any], *, now: datetime | None = None, dead_after_s: float = DEAD_AFTER_S
) -> dict[str, Any]:
    """Every figure ``experiments list`` and the UI show for one run (JSON-ready). A run whose
    document has an unexpected shape is summarized as CORRUPT, never raised."""
    now = now or datetime.now(UTC)
    try:
        return _summarize(run, now, dead_after_s)
    except Exception as exc:  # noqa: BLE001 - one odd run must not break a listing
        problem = f"unexpected run document ({type(exc).__name__}: {exc})"
        return _summarize({"_id": run.get("_id"), "status": "CORRUPT", "_problems": [problem]}, now, dead_after_s)


def _str(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    return value if isinstance(value, str) else None


def _summarize(run: dict[str, Any], now: datetime, dead_after_s: float) -> dict[str, Any]:
    info, config = _dict(run.get("info")), _dict(run.get("config"))
    run = {**run, "info": info}
    status = display_status(run, now=now, dead_after_s=dead_after_s)
    start, stop = parse_time(run.get("start_time")), parse_time(run.get("stop_time"))
    beat = parse_time(run.get("heartbeat"))
    end = stop or (now if status == "RUNNING" else beat)
    git, test, model, dvc = _git(run), _dict(info.get("test_metrics")), _dict(info.get("model")), _dict(info.get("dvc"))
    latest: dict[str, float | None] = {}
    epoch = None
    for name in EPOCH_METRICS:
        steps, values = metric_series(run, name)
        if steps:
            latest[name] = values[-1]
            epoch = max(epoch or 0, steps[-1])
    _, val_acc = metric_series(run, "val_accuracy")
    _, test_acc = metric_series(run, "test_accuracy")
    evaluation, vertex = _dict(run.get("_evaluation")), _dict(info.get("vertex_job"))
    return {
        "id": str(run.get("_id")),
        "status": status,
        "sacred_status": _str(run, "status"),
        "problems": list(run.get("_problems") or []),
        "name": _str(_dict(run.get("experiment")), "name"),
        "start": _iso(start),
        "stop": _iso(stop),
        "heartbeat": _iso(beat),
        "duration_s": round((end - start).total_seconds(), 1) if start and end and end >= start else None,
        "host": _str(info, "host") or _str(_dict(run.get("host")), "hostname"),
        "backend": _str(info, "backend"),
        "vertex_job": _str(vertex, "name") or _str(vertex, "id") or _str(info, "vertex_job"),
        "commit": _str(git, "commit"),
        "dirty": bool(git.get("dirty")),
        "data_version": _str(info, "data_version"),
        "dvc_experiment": _str(dvc, "experiment"),
        "dvc_baseline": _str(dvc, "baseline"),
        "queued": bool(dvc.get("queued")),
        "params": flatten(config),
        "epoch": epoch,
        "epochs": config.get("epochs") if isinstance(config.get("epochs"), int) else None,
        "latest": latest,
        "best_val_accuracy": max((v for v in val_acc if v is not None), default=None),
        "test_accuracy": _number(test.get("accuracy")) if test else (test_acc[-1] if test_acc else None),
        "test_loss": _number(test.get("loss")),
        "eval_accuracy": _number(evaluation.get("accuracy")),
        "eval_log_loss": _number(evaluation.get("log_loss")),
        "gate_passed": evaluation.get("passed") if isinstance(evaluation.get("passed"), bool) else None,
        "gate_min_accuracy": _number(evaluation.get("min_accuracy")),
        "model_sha256": _str(model, "sha256"),
        "model_version": _str(model, "version"),
        "epochs_run": model.get("epochs_run") if isinstance(model.get("epochs_run"), int) else None,
        "artifacts": artifact_names(run),
        "fail_trace": "".join(run["fail_trace"]) if isinstance(run.get("fail_trace"), list) else None,
    }
