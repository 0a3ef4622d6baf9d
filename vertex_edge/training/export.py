"""A trained Keras model -> the model folder every later step reads (:class:`ModelArtifact`).

:func:`save_model` writes ``model.keras``, exports the inference network (no augmentation layers;
mirror averaging when the params ask for it) to ``model.onnx``, checks ONNX Runtime against Keras
on real images, makes the model monitorable (:func:`add_monitoring`: the embedding and monitor
outputs in ``model.onnx``, the reference profile of the held-out validation images beside it,
the out-of-distribution flag calibrated to ``monitor.ood.fpr``), and writes the card with the
sha256 of every file. It runs once per training: in this process for the local backend, inside
the Vertex AI job for the Vertex backends (whose folder is then downloaded and verified by
sha256, never exported again).

TensorFlow, tf2onnx and ONNX Runtime are imported inside the functions: importing them takes
seconds, and only a training process needs them.
"""

from __future__ import annotations

import logging
import platform
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vertex_edge.artifact import (
    KERAS_FILE,
    ONNX_FILE,
    InputSpec,
    ModelArtifact,
    ModelCard,
    MonitorSpec,
    OutputSpec,
    TrainMetrics,
    digests,
)
from vertex_edge.data.prepare import PreparedMeta, Split
from vertex_edge.errors import EdgeError
from vertex_edge.gitinfo import GitInfo
from vertex_edge.monitoring.embedding import EMBEDDING_OUTPUT
from vertex_edge.monitoring.layout import MONITOR_OUTPUT, layout_columns
from vertex_edge.monitoring.ood import MIN_HELDOUT
from vertex_edge.monitoring.prepare import prepare_model
from vertex_edge.params import TrainParams
from vertex_edge.training.fit import TrainResult
from vertex_edge.training.network import inference_copy

if TYPE_CHECKING:  # pragma: no cover
    import keras

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4
#: held-out images the reference profile is made from, at most (the validation split is shuffled;
#: 6,000 images took 9.5 s, 10,000 15 s on 2 vCPUs)
MAX_HELDOUT = 10_000
OUTPUT_KINDS = {
    EMBEDDING_OUTPUT: "penultimate activations (averaged over the views of a mirror-averaging model)",
    MONITOR_OUTPUT: "out-of-distribution score and flag, input summary features, embedding components",
}


def export_onnx(model: keras.Model, path: Path, sample: np.ndarray) -> tuple[float, str]:
    """Export ``model`` to ONNX at ``path`` and check it against Keras on ``sample``.

    Returns (the largest absolute difference, the ONNX input name); raises if the difference
    exceeds :data:`ONNX_TOLERANCE`.
    """
    import onnxruntime as ort  # deferred: see the module docstring

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes np.object
        model.export(str(path), format="onnx", verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch = sample.astype(np.float32)
    onnx_out = session.run(None, {name: batch})[0]
    keras_out = np.asarray(model.predict(batch, verbose=0))
    diff = float(np.max(np.abs(onnx_out - keras_out)))
    if not diff <= ONNX_TOLERANCE:
        raise EdgeError(f"the ONNX export differs from the Keras model by {diff:.2e} (tolerance {ONNX_TOLERANCE:g})")
    return diff, name


def train_metrics(result: TrainResult) -> TrainMetrics:
    return TrainMetrics(
        test_accuracy=round(result.test_accuracy, 6),
        test_loss=round(result.test_loss, 6),
        val_accuracy=round(max((r.get("val_accuracy", 0.0) for r in result.history), default=0.0), 6),
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        train_seconds=round(result.seconds, 1),
        train_images=result.train_count,
    )


def save_model(
    result: TrainResult,
    folder: Path,
    *,
    meta: PreparedMeta,
    params: TrainParams,
    model_name: str,
    git: GitInfo,
    sample: np.ndarray,
    ood_fpr: float,
    training: dict[str, Any] | None = None,
) -> ModelArtifact:
    """Write the model folder into ``folder`` (an empty folder the caller renames into place);
    ``ood_fpr`` is ``params.yaml`` ``monitor.ood.fpr``."""
    import keras  # deferred: see the module docstring

    created = datetime.now(UTC).replace(microsecond=0)
    result.model.save(folder / KERAS_FILE)
    exported = inference_copy(result.model, params, image_shape=tuple(meta.image_shape), num_classes=meta.num_classes)
    onnx_diff, input_name = export_onnx(exported, folder / ONNX_FILE, sample)
    monitor = add_monitoring(folder, result.heldout, labels=list(meta.labels), fpr=ood_fpr, seed=params.seed)
    files = digests(folder)
    card = ModelCard(
        name=model_name,
        version=f"{created.strftime('%Y%m%dT%H%M%SZ')}-{files[ONNX_FILE].sha256[:8]}",
        created=created.isoformat(),
        labels=list(meta.labels),
        input=InputSpec(name=input_name, shape=[None, *meta.image_shape]),
        output=OutputSpec(shape=[None, meta.num_classes]),
        params=params.model_dump(mode="json"),
        data_version=meta.data_version,
        git=git,
        metrics=train_metrics(result),
        artifacts=files,
        onnx_max_abs_diff=onnx_diff,
        framework={"keras": keras.__version__, "backend": keras.backend.backend(), "python": platform.python_version()},
        training=training or {},
        monitor=monitor,
    )
    return ModelArtifact(folder, card).write_card()


def add_monitoring(
    folder: Path, heldout: Split | None, *, labels: list[str], fpr: float, seed: int
) -> MonitorSpec | None:
    """Add the monitor outputs to ``folder/model.onnx`` and write its reference profile from the
    held-out images (at most :data:`MAX_HELDOUT`). Without enough held-out images the model is
    left as exported (still servable, with no out-of-distribution flag) and a warning says why."""
    count = 0 if heldout is None else len(heldout.labels)
    if heldout is None or count < MIN_HELDOUT:
        why = "train.validation_split is 0" if not count else f"only {count} images are held out"
        log.warning(
            "warning: %s, and the out-of-distribution flag needs at least %d held-out images: the model "
            "is saved without its monitor output and reference profile (servable, but no OOD flag and "
            "nothing for 'edge.py monitor' to compare with)", why, MIN_HELDOUT,
        )  # fmt: skip
        return None
    started = time.monotonic()
    images = heldout.images[:MAX_HELDOUT].astype(np.float32)
    profile = prepare_model(folder, images, heldout.labels[:MAX_HELDOUT], class_names=labels, fpr=fpr, seed=seed)
    columns = layout_columns(int(profile.meta["components"]))
    return MonitorSpec(
        outputs=extra_outputs(folder / ONNX_FILE, monitor_columns=list(columns)),
        ood_threshold=round(float(profile.detector.threshold), 6),
        ood_fpr=fpr,
        heldout_images=len(images),
        heldout_accuracy=round(profile.accuracy, 6),
        seconds=round(time.monotonic() - started, 1),
    )


def extra_outputs(path: Path, *, monitor_columns: list[str]) -> list[OutputSpec]:
    """The ONNX model's outputs after the probabilities, as the card lists them."""
    import onnxruntime as ort  # deferred: see the module docstring

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [
        OutputSpec(
            name=out.name, shape=[d if isinstance(d, int) else None for d in out.shape],
            kind=OUTPUT_KINDS.get(out.name, "other"), columns=monitor_columns if out.name == MONITOR_OUTPUT else None,
        )  # fmt: skip
        for out in session.get_outputs()[1:]
    ]
