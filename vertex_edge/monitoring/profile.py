"""The reference profile, made at training time from held-out images and kept in the model folder.

:func:`prepare_model` is the training hook. Given the freshly exported ``model.onnx`` and the
held-out images (the validation split: never trained on), it

1. adds the embedding output (:func:`vertex_edge.monitoring.embedding.add_embedding_output`);
2. runs the model on the held-out images: probabilities, embedding;
3. fits and calibrates the out-of-distribution detector (:mod:`vertex_edge.monitoring.ood`) to
   ``fpr`` (cut in three parts: fit, scale, calibrate);
4. appends the monitor output to ``model.onnx`` (:mod:`vertex_edge.monitoring.graph`) and checks
   that ONNX Runtime's monitor columns equal the numpy reference on held-out images;
5. writes :data:`PROFILE_FILE` beside it (atomically): the reference rows (predicted class,
   confidence, entropy, input features, embedding components and OOD score of every held-out
   image outside the fitting part, with its true label), the class histogram, the held-out
   accuracy and per-class recall, and the detector's parameters.

``edge.py monitor`` compares captured windows with these rows. The file is numpy's ``.npz``
(no pickle) with a JSON ``meta`` entry.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vertex_edge.artifact import PROFILE_FILE as PROFILE_FILE  # the file name is the artifact's
from vertex_edge.errors import DataError
from vertex_edge.fsutil import atomic_write_bytes
from vertex_edge.monitoring.features import FEATURES, confidence_entropy, summarize
from vertex_edge.monitoring.ood import OodDetector, Split3, fit_detector

log = logging.getLogger(__name__)

SCHEMA = 1
COMPONENTS = 8  # embedding components kept per record (of the detector's 32)
_DETECTOR_ARRAYS = (
    "centre",
    "upper",
    "lower",
    "pixel_mean",
    "pixel_basis",
    "embedding_mean",
    "embedding_basis",
    "bank",
)


@dataclass(frozen=True)
class ReferenceProfile:
    """The held-out reference rows and the detector. Arrays are row-aligned."""

    meta: dict[str, Any]
    class_id: np.ndarray  # [n] predicted
    label: np.ndarray  # [n] true
    confidence: np.ndarray
    entropy: np.ndarray
    features: np.ndarray  # [n, F]
    embedding: np.ndarray  # [n, components] (0 columns without an embedding)
    ood_score: np.ndarray
    detector: OodDetector

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def model_sha256(self) -> str:
        """The sha256 of the ``model.onnx`` this profile was made for (set by ``prepare_model``)."""
        return str(self.meta.get("model_sha256", ""))

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.class_id == self.label)) if len(self.label) else 0.0

    def class_share(self) -> np.ndarray:
        counts = np.bincount(self.class_id, minlength=len(self.labels)).astype(np.float64)
        return counts / max(counts.sum(), 1.0)

    def recall(self) -> np.ndarray:
        out = np.full(len(self.labels), np.nan)
        for k in range(len(self.labels)):
            mask = self.label == k
            if mask.any():
                out[k] = float(np.mean(self.class_id[mask] == k))
        return out

    # ------------------------------------------------------------------ file
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "meta": np.array(json.dumps(self.meta)),
            "class_id": self.class_id.astype(np.int16),
            "label": self.label.astype(np.int16),
            "confidence": self.confidence.astype(np.float32),
            "entropy": self.entropy.astype(np.float32),
            "features": self.features.astype(np.float32),
            "embedding": self.embedding.astype(np.float32),
            "ood_score": self.ood_score.astype(np.float32),
        }
        for name in _DETECTOR_ARRAYS:
            value = getattr(self.detector, name)
            if value is not None:
                arrays[f"ood_{name}"] = np.asarray(value, dtype=np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    def write(self, path: Path) -> None:
        atomic_write_bytes(Path(path), self.to_bytes())

    @classmethod
    def read(cls, path: Path | str, data: bytes | None = None) -> ReferenceProfile:
        """Read a profile file (or its bytes); :class:`DataError` naming what is wrong."""
        source = str(path)
        try:
            raw = Path(path).read_bytes() if data is None else data
        except FileNotFoundError:
            raise DataError(
                f"{source} is missing: the model has no reference profile",
                hint="models trained before monitoring existed have none; retrain ('dvc repro') to make one",
            ) from None
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{source} is not a reference profile ({type(exc).__name__}: {exc})") from None
        if meta.get("schema") != SCHEMA or meta.get("features") != list(FEATURES):
            raise DataError(
                f"{source} has profile schema {meta.get('schema')} with features {meta.get('features')}; "
                f"this version reads schema {SCHEMA} with {list(FEATURES)}",
                hint="retrain the model so its profile matches this version of vertex-edge",
            )
        spec = meta["ood"]
        detector = OodDetector(
            names=tuple(spec["names"]), threshold=float(spec["threshold"]), fpr=float(spec["fpr"]), k=int(spec["k"]),
            **{name: arrays.get(f"ood_{name}") for name in _DETECTOR_ARRAYS},
        )  # fmt: skip
        return cls(
            meta=meta,
            class_id=arrays["class_id"].astype(np.int64),
            label=arrays["label"].astype(np.int64),
            confidence=arrays["confidence"],
            entropy=arrays["entropy"],
            features=arrays["features"],
            embedding=arrays["embedding"],
            ood_score=arrays["ood_score"],
            detector=detector,
        )


def run_model(model: bytes | Path, images: np.ndarray, *, batch: int = 512) -> dict[str, np.ndarray]:
    """Every output of an ONNX model on ``images``, by output name (one thread, in batches)."""
    import onnxruntime as ort  # deferred: only training and the benchmarks run a model here

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = session.get_inputs()[0].name
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, len(images), batch):
        chunk = np.ascontiguousarray(images[start : start + batch], dtype=np.float32)
        for name, value in zip(names, session.run(names, {feed: chunk}), strict=True):
            parts[name].append(value)
    out = {name: np.concatenate(values) for name, values in parts.items()}
    out["probabilities"] = out[names[0]]
    return out


def build_profile(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    embedding: np.ndarray | None,
    *,
    class_names: list[str],
    fpr: float,
    seed: int = 0,
    components: int = COMPONENTS,
) -> ReferenceProfile:
    """The profile of the held-out ``images`` (true ``labels``) given the model's outputs on them."""
    images = np.asarray(images, dtype=np.float32)
    if len(images) != len(labels) or len(images) != len(probabilities):
        raise DataError("held-out images, labels and probabilities must have the same number of rows")
    features = summarize(images)
    split = Split3.of(len(images), seed)
    detector, _ = fit_detector(images, features, embedding, split, fpr=fpr, seed=seed)
    rows = np.sort(np.concatenate([split.scale, split.calibrate]))
    scores, flags = detector.score(images[rows], features[rows], None if embedding is None else embedding[rows])
    class_id, confidence, entropy = confidence_entropy(probabilities[rows])
    kept = min(components, detector.embedding_basis.shape[0]) if detector.embedding_basis is not None else 0
    emb = detector.project(embedding[rows])[0][:, :kept] if embedding is not None and kept else np.zeros((len(rows), 0))
    calibrated = np.isin(rows, split.calibrate)
    meta = {
        "schema": SCHEMA,
        "labels": list(class_names),
        "features": list(FEATURES),
        "components": kept,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "heldout": {"images": len(images), "reference_rows": len(rows), "fit_rows": len(split.fit)},
        "ood": {
            "names": list(detector.names),
            "threshold": detector.threshold,
            "fpr": fpr,
            "k": detector.k,
            "calibration_rows": int(calibrated.sum()),
            "flagged_in_reference": float(flags.mean()),
        },
    }
    return ReferenceProfile(
        meta=meta, class_id=class_id, label=np.asarray(labels)[rows].astype(np.int64), confidence=confidence,
        entropy=entropy, features=features[rows], embedding=emb.astype(np.float32), ood_score=scores, detector=detector,
    )  # fmt: skip
