"""A tracked training run: load prepared data, train inside a Sacred experiment, write outputs.

Shared by the local DVC ``train`` stage and the Vertex AI trainer, so both record the same
fields. The Sacred experiment is created per call (no module-level state).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import platform
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vertex_edge.data.prepare import load_npz
from vertex_edge.errors import DataError
from vertex_edge.fsutil import atomic_dir, atomic_write_json, atomic_write_text, file_digest
from vertex_edge.gitinfo import git_info
from vertex_edge.model import inference_copy
from vertex_edge.params import TrainParams
from vertex_edge.tracking import TrackingTarget, connect_mongo, make_observers
from vertex_edge.training import TrainResult, export_onnx, train

log = logging.getLogger(__name__)

HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrainOutputs:
    model_dir: Path
    metrics: Path
    history: Path


def load_meta(data_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((data_dir / "meta.json").read_text())
    except FileNotFoundError:
        raise DataError(
            f"{data_dir / 'meta.json'} not found", hint="run the prepare stage first ('dvc repro')"
        ) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{data_dir / 'meta.json'} is not valid JSON: {exc}") from None


def history_csv(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(HISTORY_FIELDS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (round(row[k], 6) if k != "epoch" else int(row[k])) for k in HISTORY_FIELDS if k in row})
    return buf.getvalue()


def write_outputs(
    result: TrainResult,
    outputs: TrainOutputs,
    *,
    meta: dict[str, Any],
    params: TrainParams,
    model_name: str,
    git: dict[str, Any],
    run_id: str | None,
    sample: Any,
    extra_card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write model.keras, model.onnx (checked against Keras) and model_card.json as one folder,
    then the metrics and history files. Every file is replaced atomically."""
    import keras

    created = datetime.now(UTC).replace(microsecond=0)
    with atomic_dir(outputs.model_dir) as tmp:
        result.model.save(tmp / "model.keras")
        exported = inference_copy(
            result.model, params, image_shape=tuple(meta["image_shape"]), num_classes=len(meta["labels"])
        )
        onnx_diff = export_onnx(exported, tmp / "model.onnx", sample)
        artifacts = {
            name: {"sha256": file_digest(tmp / name, "sha256"), "bytes": (tmp / name).stat().st_size}
            for name in ("model.onnx", "model.keras")
        }
        import onnxruntime as ort

        input_name = (
            ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        )
        card = {
            "name": model_name,
            "version": f"{created.strftime('%Y%m%dT%H%M%SZ')}-{artifacts['model.onnx']['sha256'][:8]}",
            "created": created.isoformat(),
            "labels": list(meta["labels"]),
            "input": {"name": input_name, "shape": [None, *meta["image_shape"]], "dtype": "float32", "range": [0, 255]},
            "output": {"shape": [None, len(meta["labels"])], "kind": "softmax probabilities"},
            "params": params.model_dump(mode="json"),
            "data_version": meta["data_version"],
            "git": git,
            "metrics": {
                "test_accuracy": round(result.test_accuracy, 6),
                "test_loss": round(result.test_loss, 6),
                "val_accuracy": round(max((r.get("val_accuracy", 0.0) for r in result.history), default=0.0), 6),
                "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch,
                "train_seconds": round(result.seconds, 1),
                "train_images": result.train_count,
            },
            "artifacts": artifacts,
            "onnx_max_abs_diff": onnx_diff,
            "framework": {
                "keras": keras.__version__,
                "backend": keras.backend.backend(),
                "python": platform.python_version(),
            },
            "sacred_run_id": run_id,
            **(extra_card or {}),
        }
        atomic_write_json(tmp / "model_card.json", card)
    atomic_write_json(outputs.metrics, card["metrics"])
    atomic_write_text(outputs.history, history_csv(result.history))
    return card


def new_experiment(
    name: str, params: TrainParams, tracking: TrackingTarget, *, mongo_client: Any, echo: Callable[[str], None]
) -> Any:
    """A Sacred experiment for one training run, observed as ``tracking`` says.

    Tracking is connected here, before any training: an unreachable MongoDB fails at once.
    """
    from sacred import SETTINGS, Experiment

    if tracking.kind == "mongo" and mongo_client is None:
        mongo_client = connect_mongo(tracking)
    observers = make_observers(tracking, mongo_client=mongo_client)
    echo(f"tracking: {tracking.describe()}")
    SETTINGS.CAPTURE_MODE = "no"  # the terminal shows progress; metrics are logged explicitly
    ex = Experiment(name, save_git_info=False)
    logger = logging.getLogger("vertex_edge.sacred")  # Sacred's INFO lines duplicate ours
    logger.setLevel(logging.WARNING if observers else logging.ERROR)  # no "no observers" warning when offline
    ex.logger = logger
    ex.add_config(params.model_dump(mode="json"))
    ex.observers.extend(observers)
    return ex


def run_experiment(ex: Any, tracking: TrackingTarget, echo: Callable[[str], None]) -> Any:
    """Run ``ex``; Ctrl-C and SIGTERM are recorded as INTERRUPTED (and re-raised)."""
    with sigterm_as_interrupt():
        try:
            run = ex.run()
        except KeyboardInterrupt:
            echo("training interrupted: the run is recorded as INTERRUPTED")
            raise
    if run._id is not None:
        echo(f"experiment id: {run._id} ({tracking.describe()})")
    return run


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a killed job) is recorded like Ctrl-C: Sacred marks the run INTERRUPTED."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_tracked_training(
    *,
    data_dir: Path,
    params: TrainParams,
    outputs: TrainOutputs,
    tracking: TrackingTarget,
    model_name: str,
    repo: Path,
    echo: Callable[[str], None] = lambda line: None,
    mongo_client: Any = None,
    extra_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and record the run; return the model card.

    Tracking is checked before any training starts: an unreachable MongoDB fails at once.
    """
    meta = load_meta(data_dir)
    train_split = load_npz(data_dir / "train.npz")
    test_split = load_npz(data_dir / "test.npz")
    ex = new_experiment(model_name, params, tracking, mongo_client=mongo_client, echo=echo)
    git = git_info(repo)
    card_box: dict[str, Any] = {}

    @ex.main
    def _run_main(_run: Any) -> float:
        run_id = None if _run._id is None else str(_run._id)
        _run.info.update(
            {
                "data_version": meta["data_version"],
                "git": git,
                "host": platform.node(),
                **(extra_info or {}),
            }
        )

        def on_epoch(epoch: int, logs: dict[str, float], seconds: float) -> None:
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if key in logs:
                    _run.log_scalar(key, logs[key], epoch)
            shown = "  ".join(
                f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs
            )
            echo(f"epoch {epoch}/{params.epochs}  {shown}  ({seconds:.1f}s)")

        result = train(train_split, test_split, params, num_classes=len(meta["labels"]), on_epoch=on_epoch)
        echo(
            f"test accuracy {result.test_accuracy:.4f}, loss {result.test_loss:.4f} "
            f"({result.epochs_run} epochs, best {result.best_epoch}, {result.seconds:.0f}s)"
        )
        card = write_outputs(
            result,
            outputs,
            meta=meta,
            params=params,
            model_name=model_name,
            git=git,
            run_id=run_id,
            sample=test_split.images[:256],
        )
        onnx = outputs.model_dir / "model.onnx"
        _run.info["test_metrics"] = {"accuracy": result.test_accuracy, "loss": result.test_loss}
        _run.info["model"] = {
            "path": str(onnx),
            "sha256": card["artifacts"]["model.onnx"]["sha256"],
            "version": card["version"],
            "epochs_run": result.epochs_run,
        }
        _run.log_scalar("test_accuracy", result.test_accuracy)
        card_box.update(card)
        return result.test_accuracy

    run_experiment(ex, tracking, echo)
    return card_box
