"""Training as a pure function: arrays and params in, a trained model and its history out.

No files, no tracking, no environment: callers (the DVC stage, the Vertex trainer) decide
where outputs go and how runs are recorded, through the ``on_epoch`` callback.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vertex_edge.data.prepare import Split
from vertex_edge.errors import DataError, EdgeError
from vertex_edge.params import TrainParams
from vertex_edge.training.network import build_model, float32_copy, predict

if TYPE_CHECKING:  # pragma: no cover
    import keras

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float], float], None]  # (epoch 1-based, logs, seconds)
# Keras runs this many batches per call into the backend. Results are identical to 1; on a
# 2-core CPU it halves the epoch time by taking the per-batch Python overhead off the critical path.
STEPS_PER_EXECUTION = 32


@dataclass
class TrainResult:
    model: keras.Model
    history: list[dict[str, float]]  # one row per epoch: epoch, loss, accuracy, val_loss, val_accuracy
    test_loss: float
    test_accuracy: float
    epochs_run: int
    best_epoch: int
    seconds: float
    train_count: int
    val_count: int
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # process CPU time of model.fit (all threads)
    heldout: Split | None = None  # the validation split (never trained on): the reference profile's images


def split_train_val(split: Split, params: TrainParams) -> tuple[Split, Split | None]:
    """Shuffle with the seed, apply ``subset``, hold out ``validation_split``."""
    n = len(split.labels)
    order = np.random.default_rng(params.seed).permutation(n)
    if params.subset:
        order = order[: min(params.subset, n)]
    n_val = int(round(len(order) * params.validation_split))
    if params.validation_split > 0 and n_val == 0:
        n_val = 1
    if len(order) - n_val < 1:
        raise DataError(f"not enough training images ({len(order)}) for validation_split {params.validation_split}")
    train_idx, val_idx = order[n_val:], order[:n_val]
    train = Split(split.images[train_idx], split.labels[train_idx])
    val = Split(split.images[val_idx], split.labels[val_idx]) if n_val else None
    return train, val


def make_schedule(params: TrainParams, *, steps_per_epoch: int) -> Any:
    """Cosine decay to ``final_lr`` (a fraction of the learning rate) over the whole run, after
    ``warmup_epochs`` of linear warm-up from 0 (at most half the run, so that one-epoch test runs
    of the default params still train)."""
    import keras

    total = steps_per_epoch * params.epochs
    warmup = min(int(round(steps_per_epoch * params.warmup_epochs)), total // 2)
    alpha = params.final_lr
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(params.learning_rate, decay_steps=total, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total - warmup), alpha=alpha, warmup_target=params.learning_rate, warmup_steps=warmup
    )


def make_optimizer(params: TrainParams, *, steps_per_epoch: int) -> Any:
    """Adam on :func:`make_schedule`, AdamW with ``weight_decay``; with ``ema_momentum`` it also keeps
    a moving average of the weights."""
    import keras

    options: dict[str, Any] = {"learning_rate": make_schedule(params, steps_per_epoch=steps_per_epoch)}
    if params.ema_momentum > 0:
        options.update(use_ema=True, ema_momentum=params.ema_momentum)
    if params.weight_decay > 0:
        return keras.optimizers.AdamW(weight_decay=params.weight_decay, **options)
    return keras.optimizers.Adam(**options)


def make_loss(params: TrainParams) -> Any:
    """Cross-entropy; with ``label_smoothing`` on one-hot targets (see :func:`targets`)."""
    import keras

    if params.label_smoothing > 0:
        return keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing)
    return "sparse_categorical_crossentropy"


def targets(labels: np.ndarray, params: TrainParams, num_classes: int) -> np.ndarray:
    """Training targets for :func:`make_loss`: class indices, or one-hot rows with label smoothing."""
    if params.label_smoothing > 0:
        return np.eye(num_classes, dtype=np.float32)[labels.astype(np.int64)]
    return labels.astype(np.int32)


def train(
    train_split: Split,
    test_split: Split,
    params: TrainParams,
    *,
    num_classes: int,
    on_epoch: EpochCallback | None = None,
    model: keras.Model | None = None,
    initial_epoch: int = 0,
    extra_callbacks: list[Any] | None = None,
    steps_per_execution: int = STEPS_PER_EXECUTION,
) -> TrainResult:
    """Train the CNN; return the model (best validation epoch when early stopping) and history.

    ``model``/``initial_epoch``/``extra_callbacks`` let a caller resume from a checkpoint
    (the Vertex trainer does); the DVC stage passes none of them. ``steps_per_execution`` must be
    1 under a multi-worker distribution strategy (TensorFlow cannot loop steps there).
    """
    import keras

    keras.utils.set_random_seed(params.seed)
    train_part, val_part = split_train_val(train_split, params)
    image_shape = tuple(train_split.images.shape[1:])
    steps = max(1, math.ceil(len(train_part.labels) / params.batch_size))
    if model is None:
        model = build_model(
            params.model,
            image_shape=image_shape,  # type: ignore[arg-type]
            num_classes=num_classes,
            seed=params.seed,
            augment=params.augment,
            precision=params.precision,
            steps_per_epoch=steps,
        )
    model.compile(
        optimizer=make_optimizer(params, steps_per_epoch=steps),
        loss=make_loss(params),
        metrics=["accuracy"],
        steps_per_execution=max(1, min(steps_per_execution, steps)),
    )
    history: list[dict[str, float]] = []
    timer = {"t": time.monotonic()}

    class _Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            timer["t"] = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}}
            history.append(row)
            if on_epoch:
                on_epoch(epoch + 1, row, time.monotonic() - timer["t"])

    callbacks: list[Any] = [_Report(), *(extra_callbacks or [])]
    stopper = None
    if val_part is not None and params.early_stopping_patience > 0:
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=params.early_stopping_patience, restore_best_weights=True
        )
        callbacks.append(stopper)
    if params.ema_momentum > 0:
        # Keras puts the moving average into the weights when fit ends, before callbacks' on_train_end;
        # this one runs after EarlyStopping's so the average is what is kept.
        callbacks.append(_keep_average_callback())
    validation = (
        (val_part.images.astype(np.float32), targets(val_part.labels, params, num_classes))
        if val_part is not None
        else None
    )
    started, cpu_started = time.monotonic(), time.process_time()
    try:
        model.fit(
            train_part.images.astype(np.float32),
            targets(train_part.labels, params, num_classes),
            batch_size=params.batch_size,
            shuffle=True,
            epochs=params.epochs,
            initial_epoch=initial_epoch,
            validation_data=validation,
            callbacks=callbacks,
            verbose=0,
        )
    except (ValueError, TypeError) as exc:  # bad shapes/params surface here
        raise EdgeError(f"training failed: {exc}") from None
    seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
    # what the exported (float32) model will answer
    scorer = (
        model
        if params.precision == "float32"
        else float32_copy(model, params, image_shape=image_shape, num_classes=num_classes)
    )
    probs = predict(scorer, test_split.images, params)
    labels = test_split.labels.astype(np.int64)
    test_accuracy = float(np.mean(probs.argmax(axis=1) == labels))
    test_loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0))))
    best_epoch = len(history)
    if stopper is not None and history:
        best_epoch = int(max(history, key=lambda r: r.get("val_accuracy", 0.0))["epoch"])
    return TrainResult(
        model=model,
        history=history,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        epochs_run=len(history),
        best_epoch=best_epoch,
        seconds=seconds,
        train_count=len(train_part.labels),
        val_count=0 if val_part is None else len(val_part.labels),
        cpu_seconds=cpu_seconds,
        heldout=val_part,
    )


def _keep_average_callback() -> Any:
    import keras

    class KeepAverage(keras.callbacks.Callback):
        def on_train_end(self, logs: dict | None = None) -> None:
            self.model.optimizer.finalize_variable_values(self.model.trainable_weights)

    return KeepAverage()
