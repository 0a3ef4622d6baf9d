"""The columns of the model's ``monitor`` output, and reading them in the prediction server.

A model prepared by :func:`vertex_edge.monitoring.profile.prepare_model` has a third output,
``monitor`` (``ood score | ood flag | input summary features | embedding components``), and its
column names in the ONNX metadata (key :data:`LAYOUT_KEY`), so a server never guesses them.

:class:`ModelMonitor` is what the server keeps beside its ONNX Runtime session (immutable, swapped
with the model): which outputs to ask for, how to pack the probabilities and the monitor columns
into one array per micro-batch (the batcher slices rows per request, so one array is all it
needs), and the ``ood`` field of each prediction. numpy and the standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from vertex_edge.monitoring.features import FEATURES

MONITOR_OUTPUT = "monitor"
LAYOUT_KEY = "edge_monitor_layout"
SCORE, FLAG = "ood_score", "ood_flag"


def layout_columns(components: int) -> tuple[str, ...]:
    """The monitor output's column names for ``components`` embedding components."""
    return (SCORE, FLAG, *FEATURES, *(f"emb_{i}" for i in range(components)))


@dataclass(frozen=True)
class ModelMonitor:
    """How one loaded model's outputs are read: built once per model load, never per request."""

    version: str
    labels: tuple[str, ...]
    output_names: tuple[str, ...]  # what to ask ONNX Runtime for: probabilities (+ monitor)
    columns: tuple[str, ...] = ()  # the monitor columns; () for a model without them
    threshold: float | None = None

    @property
    def classes(self) -> int:
        return len(self.labels)

    @property
    def has_ood(self) -> bool:
        return bool(self.columns) and self.threshold is not None

    @classmethod
    def from_session(cls, session: Any, *, version: str, labels: tuple[str, ...]) -> ModelMonitor:
        """Read the session's outputs and metadata. A model without a ``monitor`` output gives
        a monitor that passes the probabilities through and captures output summaries only."""
        outputs = [o.name for o in session.get_outputs()]
        meta = dict(getattr(session.get_modelmeta(), "custom_metadata_map", {}) or {})
        if MONITOR_OUTPUT not in outputs or LAYOUT_KEY not in meta:
            return cls(version=version, labels=labels, output_names=(outputs[0],))
        spec = json.loads(meta[LAYOUT_KEY])
        threshold = spec.get("threshold")
        return cls(
            version=version,
            labels=labels,
            output_names=(outputs[0], MONITOR_OUTPUT),
            columns=tuple(spec["columns"]),
            threshold=None if threshold is None else float(threshold),
        )

    def pack(self, outputs: list[np.ndarray]) -> np.ndarray:
        """ONNX Runtime's outputs (in ``output_names`` order) -> float32 [N, classes + columns]."""
        if len(outputs) == 1:
            return outputs[0]
        return np.concatenate(outputs, axis=1)

    def ood_fields(self, rows: np.ndarray) -> list[dict[str, Any]] | None:
        """Each packed row's ``{"score", "flag"}`` (None for a model without an OOD detector):
        one numpy pass per request, not per prediction."""
        if not self.has_ood:
            return None
        k = self.classes
        scores = rows[:, k].round(4).tolist()
        flags = (rows[:, k + 1] > 0.5).tolist()
        return [{"score": s, "flag": f} for s, f in zip(scores, flags, strict=True)]

    def prediction_fields(self, row: np.ndarray) -> dict[str, Any]:
        """What one prediction adds to the answer: ``{"ood": {"score", "flag"}}`` (or nothing)."""
        fields = self.ood_fields(row[np.newaxis])
        return {} if fields is None else {"ood": fields[0]}

def layout_metadata(columns: tuple[str, ...], *, threshold: float | None, fpr: float | None) -> dict[str, str]:
    """The ONNX metadata entry naming the monitor columns."""
    return {LAYOUT_KEY: json.dumps({"columns": list(columns), "threshold": threshold, "fpr": fpr})}
