"""Checkpoints every epoch in ``AIP_CHECKPOINT_DIR``, resume from the latest, TensorBoard scalars.

Layout of the checkpoint folder (local or ``gs://``)::

    epoch-0003.keras    the whole model after epoch 3, optimizer state included (Keras format)
    epoch-0004.keras
    checkpoint.json     {"epoch": 4, "file": "epoch-0004.keras", "history": [...], "fingerprint": ...}

``checkpoint.json`` is written after the model file, so it always names a complete file; the
``fingerprint`` (train params + input data) keeps a checkpoint from being resumed by a run with
other params or data. The last :data:`KEEP` model files are kept.

Resuming restores the weights and the optimizer (Adam moments and its step counter, so the
cosine learning-rate schedule continues where it stopped); training continues at the next
epoch. Early stopping counts its patience from the resume point.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vertex_edge.gcp.files import Files, join

log = logging.getLogger(__name__)

INDEX = "checkpoint.json"
KEEP = 2
_EPOCH_FILE = re.compile(r"^epoch-(\d{4,})\.keras$")


def fingerprint(params_json: str, data_digests: dict[str, str]) -> str:
    """Identifies what a checkpoint was trained on: the params and the input files' digests."""
    h = hashlib.sha256(params_json.encode("utf-8"))
    for name in sorted(data_digests):
        h.update(f"\n{name}:{data_digests[name]}".encode())
    return h.hexdigest()[:32]


@dataclass
class Checkpoint:
    epoch: int  # epochs completed
    history: list[dict[str, float]]
    model_file: Path  # a local copy of the saved model


class CheckpointStore:
    """Save and find checkpoints under ``uri`` (local folder or ``gs://`` prefix)."""

    def __init__(self, files: Files, uri: str, fingerprint: str, workdir: Path, *, keep: int = KEEP) -> None:
        self.files = files
        self.uri = uri
        self.fingerprint = fingerprint
        self.workdir = workdir
        self.keep = max(1, keep)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint for this fingerprint, downloaded; None when there is none."""
        index_uri = join(self.uri, INDEX)
        if not self.files.exists(index_uri):
            return None
        try:
            data = json.loads(self.files.read_bytes(index_uri))
            epoch, name, history = int(data["epoch"]), str(data["file"]), list(data.get("history") or [])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable %s (%s): training starts from scratch", index_uri, exc)
            return None
        if data.get("fingerprint") != self.fingerprint:
            log.warning(
                "ignoring the checkpoint in %s: it was trained with other params or data; training starts from scratch",
                self.uri,
            )
            return None
        local = self.files.download(join(self.uri, name), self.workdir / name)
        return Checkpoint(epoch=epoch, history=history, model_file=local)

    def save(self, epoch: int, model_file: Path, history: Sequence[dict[str, float]]) -> None:
        name = f"epoch-{epoch:04d}.keras"
        self.files.upload(model_file, join(self.uri, name))
        index = {"epoch": epoch, "file": name, "history": list(history), "fingerprint": self.fingerprint}
        self.files.write_bytes(join(self.uri, INDEX), (json.dumps(index, indent=1) + "\n").encode("utf-8"))
        self._prune()

    def _prune(self) -> None:
        epochs = sorted(
            (int(m.group(1)), n) for n in self.files.listdir(self.uri) if (m := _EPOCH_FILE.match(n))
        )
        for _, name in epochs[: -self.keep]:
            self.files.delete(join(self.uri, name))


def history_row(epoch_index: int, logs: dict[str, Any] | None) -> dict[str, float]:
    """The same row :func:`vertex_edge.training.train` records for an epoch (1-based)."""
    return {"epoch": epoch_index + 1, **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}}


def checkpoint_callback(store: CheckpointStore, prior: Sequence[dict[str, float]], *, chief: bool = True) -> Any:
    """Save the model after every epoch; only the chief keeps it (in ``store``). With
    MultiWorkerMirroredStrategy saving reads variables collectively, so every replica saves."""
    import keras

    class _EpochCheckpoint(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.history = list(prior)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            started = time.perf_counter()
            self.history.append(history_row(epoch, logs))
            store.workdir.mkdir(parents=True, exist_ok=True)
            local = store.workdir / f"save-epoch-{epoch + 1:04d}.keras"
            self.model.save(local)
            if chief:
                store.save(epoch + 1, local, self.history)
                log.info("checkpoint: epoch %d saved to %s (%.2fs)", epoch + 1, store.uri, time.perf_counter() - started)
            local.unlink(missing_ok=True)

    return _EpochCheckpoint()


def optimizer_state(model: Any) -> list[tuple[str, Any]]:
    """(path, value) of a loaded model's optimizer variables (empty when it has none)."""
    import numpy as np

    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return []
    return [(str(v.path), np.array(v)) for v in optimizer.variables]


def restore_optimizer_callback(state: list[tuple[str, Any]]) -> Any:
    """Copy a checkpoint's optimizer state into the optimizer ``train()`` compiles, before the
    first step (by variable path; by position when every shape matches)."""
    import keras

    class _RestoreOptimizer(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            optimizer = self.model.optimizer
            if not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            targets = list(optimizer.variables)
            saved = dict(state)
            pairs = [(v, saved[str(v.path)]) for v in targets if str(v.path) in saved]
            if len(pairs) != len(targets) and len(state) == len(targets):
                pairs = list(zip(targets, (value for _, value in state), strict=True))
            if len(pairs) != len(targets) or any(tuple(v.shape) != tuple(val.shape) for v, val in pairs):
                log.warning("the checkpoint's optimizer state does not fit this model: the optimizer starts afresh")
                return
            for variable, value in pairs:
                variable.assign(value)
            log.info("restored the optimizer state (step %d)", int(optimizer.iterations.numpy()))

    return _RestoreOptimizer()


def scalars_callback(log_dir: Path, after_epoch: Callable[[], None] | None = None) -> Any:
    """Per-epoch loss/accuracy as TensorBoard scalars (``train/`` and ``validation/``, the tags
    Keras' TensorBoard callback uses), without needing the ``tensorboard`` package."""
    import keras
    import tensorflow as tf
    from tensorflow.core.framework.summary_pb2 import Summary

    writers = {
        "train": tf.summary.create_file_writer(str(log_dir / "train")),
        "validation": tf.summary.create_file_writer(str(log_dir / "validation")),
    }

    class _Scalars(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for key, value in (logs or {}).items():
                if key == "learning_rate":
                    continue
                split, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                pb = Summary(value=[Summary.Value(tag=f"epoch_{tag}", simple_value=float(value))]).SerializeToString()
                with writers[split].as_default():
                    tf.summary.experimental.write_raw_pb(tf.constant(pb), step=epoch)
            for writer in writers.values():
                writer.flush()
            if after_epoch is not None:
                after_epoch()

        def on_train_end(self, logs: dict | None = None) -> None:
            for writer in writers.values():
                writer.close()
            if after_epoch is not None:
                after_epoch()

    return _Scalars()
