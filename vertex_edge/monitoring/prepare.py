"""The training hook: make an exported model monitorable, and its reference profile.

:func:`prepare_model` runs once per training, in the model folder, after ``model.onnx`` is exported
and checked against Keras and before the model card's sha256 are taken (so the card lists the
final ``model.onnx`` and :data:`~vertex_edge.monitoring.profile.PROFILE_FILE`). The probabilities
(output 0) do not change.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from vertex_edge.errors import DataError
from vertex_edge.fsutil import atomic_write_bytes
from vertex_edge.monitoring.embedding import EMBEDDING_OUTPUT, with_embedding_output
from vertex_edge.monitoring.features import summarize
from vertex_edge.monitoring.graph import attach_monitor
from vertex_edge.monitoring.layout import MONITOR_OUTPUT
from vertex_edge.monitoring.profile import PROFILE_FILE, ReferenceProfile, build_profile, run_model

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
_CHECK_ROWS = 512
_TOLERANCE = 1e-3


def prepare_model(
    model_dir: Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: list[str],
    fpr: float,
    seed: int = 0,
) -> ReferenceProfile:
    """Add the embedding and monitor outputs to ``model_dir/model.onnx`` and write the reference
    profile of the held-out ``images`` (true ``labels``) beside it. Returns the profile."""
    path = Path(model_dir) / MODEL_FILE
    original = path.read_bytes()
    try:
        data = with_embedding_output(original, source=str(path))
    except DataError as exc:
        log.warning("%s; the OOD flag will use the pixels only", exc.message)
        data = original
    outputs = run_model(data, images)
    probabilities = outputs["probabilities"]
    before = run_model(original, images[:_CHECK_ROWS])["probabilities"]
    if not np.allclose(probabilities[:_CHECK_ROWS], before, atol=1e-6, rtol=0):
        raise DataError(f"{path}: adding the embedding output changed the probabilities")
    profile = build_profile(
        images, labels, probabilities, outputs.get(EMBEDDING_OUTPUT), class_names=class_names, fpr=fpr, seed=seed
    )
    data = attach_monitor(data, profile.detector, components=int(profile.meta["components"]))
    check_monitor_output(data, profile, images[:_CHECK_ROWS])
    atomic_write_bytes(path, data)
    meta = {**profile.meta, "model_sha256": hashlib.sha256(data).hexdigest()}
    profile = ReferenceProfile(**{**profile.__dict__, "meta": meta})
    profile.write(Path(model_dir) / PROFILE_FILE)
    log.info(
        "reference profile: %d held-out rows, OOD threshold %.3f at a %.1f %% false-positive rate",
        len(profile.class_id), profile.detector.threshold, 100 * profile.detector.fpr,
    )  # fmt: skip
    return profile


def check_monitor_output(data: bytes, profile: ReferenceProfile, images: np.ndarray) -> None:
    """ONNX Runtime's monitor columns must equal the numpy computation (features, score, flag)."""
    outputs = run_model(data, images)
    monitor = outputs[MONITOR_OUTPUT]
    features = summarize(images)
    det = profile.detector
    scores, flags = det.score(images, features, outputs.get("embedding"))
    width = features.shape[1]
    problems = []
    if not np.allclose(monitor[:, 2 : 2 + width], features, atol=_TOLERANCE, rtol=1e-4):
        problems.append("input features")
    if not np.allclose(monitor[:, 0], scores, atol=_TOLERANCE, rtol=1e-3):
        problems.append("OOD scores")
    near = np.abs(scores - det.threshold) < _TOLERANCE
    if np.any(((monitor[:, 1] > 0.5) != flags)[~near]):
        problems.append("OOD flags")
    if problems:
        raise DataError(f"the model's monitor output differs from the reference computation: {', '.join(problems)}")
