"""The model about to leave the lab: its folder (:class:`~vertex_edge.artifact.ModelArtifact`),
its test accuracy and the quality gate's verdict (:mod:`vertex_edge.gate`, the same rule the
``evaluate`` stage applies), plus what a deployer reports back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vertex_edge.artifact import ModelArtifact, ModelCard
from vertex_edge.errors import DataError, UsageError
from vertex_edge.gate import GateVerdict, judge
from vertex_edge.params import load_params

DEFAULT_MODEL_DIR = Path("models/fashion-mnist")
DEFAULT_METRICS = Path("metrics/evaluate.json")
DEFAULT_PARAMS = Path("params.yaml")


@dataclass
class Candidate:
    """The model ``dvc repro`` produced, with its test accuracy and the quality gate's verdict."""

    artifact: ModelArtifact
    verdict: GateVerdict
    accuracy_source: str
    evaluation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def model_dir(self) -> Path:
        return self.artifact.folder

    @property
    def card(self) -> ModelCard:
        return self.artifact.card

    @property
    def accuracy(self) -> float:
        return self.verdict.accuracy

    @property
    def min_accuracy(self) -> float:
        return self.verdict.min_accuracy

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def onnx_sha256(self) -> str:
        return self.card.onnx_sha256

    def gate_text(self) -> str:
        return self.verdict.text()

    def check_gate(self, *, force: bool) -> None:
        self.verdict.enforce(
            f"refusing to deploy {self.card.version}",
            force=force,
            hint="improve the model and run 'dvc repro' again, or deploy it anyway with --force",
        )


@dataclass
class DeployResult:
    """What a deployer did (or, on a dry run, would do), for the CLI to print."""

    dry_run: bool
    actions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    version: str | None = None
    how_to_call: list[str] = field(default_factory=list)
    changed: bool = False


class Deployer(Protocol):
    """One target's registry + endpoint."""

    target: str

    def deploy(self, candidate: Candidate, *, force: bool, dry_run: bool) -> DeployResult:
        """Register ``candidate`` (if new) and send the endpoint's traffic to it."""

    def deploy_version(self, version: str, *, dry_run: bool) -> DeployResult:
        """Send the endpoint's traffic to an already registered version."""

    def rollback(self, *, dry_run: bool) -> DeployResult:
        """Return the endpoint to the version deployed before the current one."""


def load_candidate(
    model_dir: Path,
    *,
    metrics_path: Path,
    params_path: Path,
    min_accuracy: float | None = None,
) -> Candidate:
    """Read the model folder (checking every file against the card's sha256), the test accuracy
    (``metrics/evaluate.json``, else the card) and the gate (``params.yaml`` ``evaluate.min_accuracy``,
    unless ``min_accuracy`` is given)."""
    artifact = ModelArtifact.read(model_dir)
    artifact.verify()
    notes: list[str] = []
    evaluation: dict[str, Any] = {}
    card_accuracy = artifact.test_accuracy
    if metrics_path.is_file():
        try:
            evaluation = json.loads(metrics_path.read_text(encoding="utf-8"))
            accuracy = float(evaluation["accuracy"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{metrics_path}: expected JSON with a numeric 'accuracy' ({exc})") from None
        source = str(metrics_path)
        if abs(card_accuracy - accuracy) > 0.02:
            notes.append(
                f"{metrics_path} says {accuracy:.4f} but the model card says {card_accuracy:.4f}: "
                "the evaluation may be stale (run 'dvc repro')"
            )
    else:
        accuracy, source = card_accuracy, "model card; no metrics/evaluate.json"
        notes.append(f"{metrics_path} not found: using the model card's test accuracy")
    if min_accuracy is None:
        min_accuracy = load_params(params_path).evaluate.min_accuracy
    elif not 0.0 <= min_accuracy <= 1.0:
        raise UsageError(f"--min-accuracy {min_accuracy}: expected a fraction between 0 and 1")
    return Candidate(artifact, judge(accuracy, min_accuracy), source, evaluation, notes)
