"""Evaluate the served artifact (``model.onnx`` with ONNX Runtime) on the test set and record the
quality gate's verdict (:mod:`vertex_edge.gate`) with the figures.

Two records: the compact DVC metrics (``metrics/evaluate.json``: accuracy, loss and the verdict,
what ``dvc metrics show`` and ``dvc exp show`` compare) and the full evaluation
(``reports/evaluation.json``, :class:`~vertex_edge.gate.EvaluationRecord`: which model - its
sha256 -, counts, per-class precision/recall). A failed gate is recorded, never raised.

:func:`run_evaluate_stage` is the ``evaluate`` stage: it also attaches the confusion matrix and the
metrics to the Sacred run that made the model (:mod:`vertex_edge.tracking.attach`; best effort: a
store that cannot be reached is a note, not a failure).

ONNX Runtime and matplotlib are imported inside the functions that use them: each takes about a
second to import, which the CLI must not pay.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vertex_edge.artifact import ONNX_FILE, ModelArtifact
from vertex_edge.data.prepare import load_npz
from vertex_edge.dvc_env import stage_config, workspace_root
from vertex_edge.errors import DataError, EdgeError
from vertex_edge.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from vertex_edge.gate import EvaluationRecord, GateVerdict, judge
from vertex_edge.gcp.sacred import tracking_environment
from vertex_edge.layout import LocalLayout
from vertex_edge.params import load_params
from vertex_edge.stage_files import clean_stale_temps
from vertex_edge.tracking.attach import Attached, attach_files
from vertex_edge.tracking.target import connect_mongo, resolve_tracking


@dataclass
class Evaluation:
    artifact: ModelArtifact
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
    return Evaluation(artifact, labels, actual, predicted, confusion, float((predicted == actual).mean()), log_loss)


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


def metrics_summary(ev: Evaluation, verdict: GateVerdict) -> dict[str, object]:
    """``metrics/evaluate.json``: the few figures a person compares (keys in the order shown)."""
    return {
        "accuracy": round(ev.accuracy, 4),
        "loss": round(ev.log_loss, 4),
        "gate": verdict.passed,
        "threshold": verdict.min_accuracy,
        "margin": round(verdict.margin, 4),
    }


def write_reports(
    ev: Evaluation, *, metrics: Path, evaluation: Path, confusion_csv: Path, confusion_png: Path, min_accuracy: float
) -> tuple[GateVerdict, EvaluationRecord]:
    """Write the metrics (with the gate's verdict), the full evaluation record, the confusion pairs
    and its picture; return the verdict and the record."""
    verdict = judge(ev.accuracy, min_accuracy)
    card = ev.artifact.card
    record = EvaluationRecord(
        model_version=card.version, model_sha256=card.onnx_sha256, accuracy=round(ev.accuracy, 6),
        log_loss=round(ev.log_loss, 6), count=int(len(ev.actual)), data_version=card.data_version,
        sacred_run_id=card.sacred_run_id, gate=verdict.record(), per_class=ev.per_class(),
    )  # fmt: skip
    rows = ["actual,predicted"] + [
        f"{ev.labels[a]},{ev.labels[p]}" for a, p in zip(ev.actual, ev.predicted, strict=True)
    ]
    atomic_write_text(confusion_csv, "\n".join(rows) + "\n")
    atomic_write_bytes(confusion_png, render_confusion_png(ev))
    record.write(evaluation)
    atomic_write_json(metrics, metrics_summary(ev, verdict))
    return verdict, record


@dataclass(frozen=True)
class EvaluateOutputs:
    metrics: Path
    evaluation: Path
    confusion_csv: Path
    confusion_png: Path


def run_evaluate_stage(
    *, repo: Path, model_dir: Path, data_dir: Path, params_path: Path, outputs: EvaluateOutputs, config_path: Path,
    offline: bool = False, echo: Callable[[str], None] = lambda line: None,
) -> tuple[GateVerdict, EvaluationRecord, Attached]:  # fmt: skip
    """The ``evaluate`` stage: score, write the reports, attach them to the model's Sacred run."""
    params = load_params(params_path, require=["evaluate"])
    clean_stale_temps(list(vars(outputs).values()))
    ev = evaluate_model(model_dir, data_dir)
    verdict, record = write_reports(
        ev, metrics=outputs.metrics, evaluation=outputs.evaluation, confusion_csv=outputs.confusion_csv,
        confusion_png=outputs.confusion_png, min_accuracy=params.evaluate.min_accuracy,
    )  # fmt: skip
    files = {"confusion_matrix.png": outputs.confusion_png, "evaluate.json": outputs.metrics,
             "evaluation.json": outputs.evaluation}  # fmt: skip
    try:
        attached = attach_to_run(repo, config_path, record, files, offline=offline)
    except EdgeError as exc:
        attached = Attached(None, reason=exc.message)
    return verdict, record, attached


def attach_to_run(
    repo: Path, config_path: Path, record: EvaluationRecord, files: dict[str, Path], *, offline: bool
) -> Attached:
    """Attach ``files`` to the Sacred run named by the model card, in the configured store."""
    if not record.sacred_run_id:
        return Attached(None, reason="the model card names no Sacred run (trained with tracking off)")
    config = stage_config(repo, config_path, os.environ)
    with tracking_environment(config, os.environ, offline=offline) as env:
        target = resolve_tracking(
            enabled=config.tracking.enabled, mongodb_url=config.tracking.mongodb_url,
            mongodb_db=config.tracking.mongodb_db, env=env, offline=offline,
            file_store=LocalLayout.from_config(config, workspace_root(repo, os.environ)).experiments,
        )  # fmt: skip
        client = connect_mongo(target) if target.kind == "mongo" else None
        return attach_files(target, record.sacred_run_id, files, model_sha256=record.model_sha256, mongo_client=client)
