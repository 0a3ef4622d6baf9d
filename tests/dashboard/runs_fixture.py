"""Sacred runs written the way the trainer writes them (the issue-12 contract): ``run.json``,
``config.json``, ``info.json`` (with ``dvc``, ``git``, ``test_metrics``, ``model``...),
``metrics.json``, ``cout.txt`` and artifacts beside them - in a file store, or in mongomock.
Shared by the dashboard's API tests, browser tests and benchmark."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
T0 = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)

PARAMS: dict[str, Any] = {
    "seed": 42, "epochs": 4, "batch_size": 64, "learning_rate": 0.002, "validation_split": 0.1,
    "early_stopping_patience": 4, "subset": 0,
    "augment": {"flip": True, "shift": 0},
    "model": {"filters": [24, 64, 128], "dense": 256, "dropout": 0.25, "dense_dropout": 0.4, "mirror_average": True},
}  # fmt: skip


def params(**changes: Any) -> dict[str, Any]:
    """The default train params with dotted-key changes (``params(**{"augment.shift": 2})``)."""
    out = json.loads(json.dumps(PARAMS))
    for dotted, value in changes.items():
        node = out
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def curves(epochs: int, *, quality: float = 0.97, nan_at: int | None = None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    for e in range(1, epochs + 1):
        f = 1 - math.exp(-e)
        out["loss"].append(round(1.0 - 0.8 * f * quality, 4))
        out["val_loss"].append(round(1.02 - 0.76 * f * quality, 4))
        out["accuracy"].append(round(0.6 + 0.36 * f * quality, 4))
        out["val_accuracy"].append(round(0.6 + 0.335 * f * quality, 4))
    if nan_at is not None:
        out["loss"][nan_at - 1] = float("nan")
    return out


def evaluation(accuracy: float, min_accuracy: float = 0.9) -> dict[str, Any]:
    per_class = {name: {"precision": round(accuracy - 0.01 * (i % 3), 4), "recall": round(accuracy - 0.012 * (i % 4), 4)}
                 for i, name in enumerate(LABELS)}  # fmt: skip
    return {"accuracy": accuracy, "log_loss": round(1.1 - accuracy, 4), "count": 10000,
            "min_accuracy": min_accuracy, "passed": accuracy >= min_accuracy, "per_class": per_class}  # fmt: skip


def confusion_png() -> bytes:
    from PIL import Image

    img = Image.new("RGB", (200, 180), (255, 255, 255))
    for i in range(10):
        for x in range(18 * i + 10, 18 * i + 26):
            for y in range(16 * i + 10, 16 * i + 24):
                img.putpixel((x, y), (30, 60, 160))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def documents(
    run_id: int,
    *,
    status: str = "COMPLETED",
    config: dict[str, Any] | None = None,
    epochs: int | None = None,
    quality: float = 0.97,
    start: datetime | None = None,
    heartbeat: datetime | None = None,
    experiment: str | None = None,
    commit: str = "6ddd26b0c0ffee0123456789abcdef0123456789",
    dirty: bool = False,
    sha256: str | None = None,
    evaluated: bool = True,
    min_accuracy: float = 0.9,
    nan_at: int | None = None,
    backend: str = "local",
) -> dict[str, Any]:
    """run/config/info/metrics/cout/artifacts of one run (the file store's files, as objects)."""
    config = config or params()
    total = int(config.get("epochs", 4))
    done = total if epochs is None else epochs
    start = start or T0 + timedelta(hours=run_id)
    beat = heartbeat or start + timedelta(seconds=30 * done + 5)
    series = curves(done, quality=quality, nan_at=nan_at)
    test_acc = round(series["val_accuracy"][-1] + 0.004, 4) if done else None
    finished = status in ("COMPLETED", "FAILED", "INTERRUPTED")
    sha = sha256 or f"{run_id:064x}"
    info: dict[str, Any] = {
        "data_version": "0f3c2a9d1b7e4c55a0f3c2a9d1b7e4c5", "git": {"commit": commit, "dirty": dirty},
        "host": "laptop-ds", "backend": backend,
        "dvc": {"experiment": experiment, "baseline": commit if experiment else None, "queued": False},
    }  # fmt: skip
    metrics = {
        name: {"steps": list(range(1, done + 1)), "values": values,
               "timestamps": [(start + timedelta(seconds=30 * (i + 1))).isoformat() for i in range(done)]}
        for name, values in series.items()
    }  # fmt: skip
    artifacts: dict[str, bytes] = {}
    if status == "COMPLETED":
        info["test_metrics"] = {"accuracy": test_acc, "loss": round(1.1 - test_acc, 4)}
        info["model"] = {"path": "models/fashion-mnist/model.onnx", "sha256": sha, "version": f"2026112{run_id % 10}T0900Z",
                         "epochs_run": done}  # fmt: skip
        metrics["test_accuracy"] = {"steps": [0], "values": [test_acc], "timestamps": [beat.isoformat()]}
        history = "epoch,loss,accuracy,val_loss,val_accuracy\n" + "".join(
            f"{e + 1},{series['loss'][e]},{series['accuracy'][e]},{series['val_loss'][e]},{series['val_accuracy'][e]}\n"
            for e in range(done)
        )
        artifacts["train_history.csv"] = history.encode()
        artifacts["model_card.json"] = json.dumps({"name": "fashion-mnist", "sacred_run_id": str(run_id)}).encode()
        if evaluated:
            artifacts["confusion_matrix.png"] = confusion_png()
            artifacts["evaluate.json"] = json.dumps(evaluation(test_acc, min_accuracy)).encode()
    run = {
        "artifacts": list(artifacts), "command": "_run_main", "status": status,
        "experiment": {"name": "fashion-mnist", "base_dir": "/repo", "dependencies": [], "mainfile": "steps/train.py",
                       "repositories": [], "sources": []},
        "host": {"hostname": "laptop-ds", "cpu": "x86_64", "os": ["Linux"], "python_version": "3.11.7", "ENV": {}},
        "meta": {"command": "_run_main", "options": {}}, "resources": [],
        "start_time": start.replace(tzinfo=None).isoformat(), "heartbeat": beat.replace(tzinfo=None).isoformat(),
        "stop_time": beat.replace(tzinfo=None).isoformat() if finished else None,
        "result": test_acc if status == "COMPLETED" else None,
    }  # fmt: skip
    if status == "FAILED":
        run["fail_trace"] = ["Traceback (most recent call last):\n", "ValueError: loss is NaN\n"]
    lines = [f"epoch {e + 1}/{total}  loss {series['loss'][e]:.4f}  val_accuracy {series['val_accuracy'][e]:.4f}"
             for e in range(done)]  # fmt: skip
    return {"run": run, "config": config, "info": info, "metrics": metrics, "cout": "\n".join(lines) + "\n",
            "artifacts": artifacts}  # fmt: skip


def write_run(store: Path, run_id: int, **kwargs: Any) -> Path:
    """Write one run into a Sacred file store folder; return the run's folder."""
    docs = documents(run_id, **kwargs)
    folder = Path(store) / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("run", "config", "info", "metrics"):
        (folder / f"{name}.json").write_text(json.dumps(docs[name], indent=2, sort_keys=True))
    (folder / "cout.txt").write_text(docs["cout"])
    for name, data in docs["artifacts"].items():
        (folder / name).write_bytes(data)
    return folder


def write_mongo_run(db: Any, run_id: int, **kwargs: Any) -> None:
    """The same run in Sacred's MongoDB shape (``runs``, ``metrics``, GridFS artifacts)."""
    import gridfs

    docs = documents(run_id, **kwargs)
    run = dict(docs["run"])
    for key in ("start_time", "heartbeat", "stop_time"):
        if run.get(key):
            run[key] = datetime.fromisoformat(run[key])
    fs = gridfs.GridFS(db)
    run["artifacts"] = [{"name": n, "file_id": fs.put(data, filename=n)} for n, data in docs["artifacts"].items()]
    run.update(_id=run_id, config=docs["config"], info=docs["info"], captured_out=docs["cout"])
    run["info"]["metrics"] = []
    db.runs.insert_one(run)
    for name, m in docs["metrics"].items():
        db.metrics.insert_one({"run_id": run_id, "name": name, **m})


def demo_store(store: Path, *, now: datetime) -> dict[str, int]:
    """A small store with one run of each kind the UI must show; returns their ids by kind."""
    write_run(store, 1, config=params(learning_rate=0.002), experiment="baseline-lr")
    write_run(store, 2, config=params(learning_rate=0.001, **{"augment.shift": 2}), experiment="lr-1e-3-shift2",
              quality=1.0)  # fmt: skip
    write_run(store, 3, config=params(epochs=6, batch_size=128), quality=0.8, min_accuracy=0.9, dirty=True)
    write_run(store, 4, status="FAILED", config=params(learning_rate=0.5), epochs=2, nan_at=2)
    write_run(store, 5, status="RUNNING", config=params(epochs=8), epochs=3, start=now - timedelta(minutes=2),
              heartbeat=now - timedelta(seconds=4), experiment="running-exp")  # fmt: skip
    write_run(store, 6, status="RUNNING", epochs=2, start=now - timedelta(hours=3), heartbeat=now - timedelta(hours=2))
    corrupt = Path(store) / "7"
    write_run(store, 7)
    (corrupt / "run.json").write_text('{"status": "COMPLETED", "start_ti')  # cut off mid-write
    half = Path(store) / "8"
    write_run(store, 8)
    (half / "metrics.json").write_text("")  # caught empty while being rewritten
    return {"completed": 1, "better": 2, "below_gate": 3, "failed": 4, "running": 5, "dead": 6, "corrupt": 7, "half": 8}
