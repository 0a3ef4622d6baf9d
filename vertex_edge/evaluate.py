"""Evaluate the served artifact (``model.onnx`` with ONNX Runtime) on the test set and record the
quality gate's verdict (:mod:`vertex_edge.gate`) with the figures.

ONNX Runtime and matplotlib are imported inside the functions that use them: each takes about a
second to import, which the CLI must not pay.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vertex_edge.artifact import ONNX_FILE, ModelArtifact
from vertex_edge.data.prepare import load_npz
from vertex_edge.errors import DataError
from vertex_edge.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from vertex_edge.gate import GateVerdict, judge


@dataclass
class Evaluation:
    labels: list[str]
    actual: np.ndarray
    predicted: np.ndarray
    confusion: np.ndarray  # [actual, predicted]
    accuracy: float
    log_loss: float

    def per_class(self) -> dict[str, dict[str, float]]:
        tp = np.diag(self.confusion).astype(float)
        predicted = self.confusion.sum(axis=0).astype(float)
        actual = self.confusion.sum(axis=1).astype(float)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
        return {
            name: {"precision": round(float(p), 4), "recall": round(float(r), 4)}
            for name, p, r in zip(self.labels, precision, recall, strict=True)
        }


def predict_onnx(model_path: Path, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    import onnxruntime as ort  # deferred: see the module docstring

    try:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise DataError(f"cannot load {model_path}: {exc}") from None
    name = session.get_inputs()[0].name
    out = [
        session.run(None, {name: images[i : i + batch_size].astype(np.float32)})[0]
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def evaluate_model(model_dir: Path, data_dir: Path) -> Evaluation:
    """Score the folder's ``model.onnx`` (checked against its card's sha256) on the test set."""
    artifact = ModelArtifact.read(model_dir)
    artifact.verify([ONNX_FILE])
    labels = list(artifact.labels)
    test = load_npz(data_dir / "test.npz")
    probs = predict_onnx(artifact.onnx_path, test.images)
    predicted = probs.argmax(axis=1)
    actual = test.labels.astype(np.int64)
    k = len(labels)
    confusion = np.bincount(actual * k + predicted, minlength=k * k).reshape(k, k)
    eps = 1e-7
    log_loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(actual)), actual], eps, 1.0))))
    return Evaluation(labels, actual, predicted, confusion, float((predicted == actual).mean()), log_loss)


def render_confusion_png(ev: Evaluation) -> bytes:
    import matplotlib  # deferred: see the module docstring

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
    im = ax.imshow(ev.confusion, cmap="Blues")
    k = len(ev.labels)
    ax.set_xticks(range(k), ev.labels, rotation=45, ha="right")
    ax.set_yticks(range(k), ev.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"Confusion matrix (test accuracy {ev.accuracy:.4f})")
    threshold = ev.confusion.max() / 2 if ev.confusion.size else 0
    for i in range(k):
        for j in range(k):
            v = ev.confusion[i, j]
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_reports(
    ev: Evaluation, *, metrics: Path, confusion_csv: Path, confusion_png: Path, min_accuracy: float
) -> GateVerdict:
    """Write the metrics (with the gate's verdict), the confusion pairs and its picture; return the verdict."""
    verdict = judge(ev.accuracy, min_accuracy)
    data = {
        "accuracy": round(ev.accuracy, 6),
        "log_loss": round(ev.log_loss, 6),
        "count": int(len(ev.actual)),
        "min_accuracy": min_accuracy,
        "passed": verdict.passed,
        "per_class": ev.per_class(),
    }
    atomic_write_json(metrics, data)
    rows = ["actual,predicted"] + [
        f"{ev.labels[a]},{ev.labels[p]}" for a, p in zip(ev.actual, ev.predicted, strict=True)
    ]
    atomic_write_text(confusion_csv, "\n".join(rows) + "\n")
    atomic_write_bytes(confusion_png, render_confusion_png(ev))
    return verdict
