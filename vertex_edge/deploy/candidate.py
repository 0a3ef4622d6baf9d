"""The model about to leave the lab: its folder (:class:`~vertex_edge.artifact.ModelArtifact`),
the figures it is judged by and the quality gate's verdict (:mod:`vertex_edge.gate`, the same rule
the ``evaluate`` stage applies), plus what a deployer reports back.

A model is judged only by figures that belong to it: the evaluate stage's record
(``reports/evaluation.json``) when it names this model's ``model.onnx`` sha256 - a record of another
model is an error, never a note -, else the card's own test figure (written by the training that
made the model, verified with the files by sha256). The threshold and the champion/challenger
tolerance come from the COMMITTED ``params.yaml`` (``git show HEAD:params.yaml``): an experiment's
``-S evaluate.min_accuracy=0`` in the working tree cannot lower what deploy accepts.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vertex_edge.artifact import ModelArtifact, ModelCard
from vertex_edge.errors import ConfigError, DataError, EdgeError, QualityGateError, UsageError
from vertex_edge.gate import Comparison, EvaluationRecord, GatePolicy, GateVerdict
from vertex_edge.params import committed_params, load_params

DEFAULT_MODEL_DIR = Path("models/fashion-mnist")
DEFAULT_EVALUATION = Path("reports/evaluation.json")
DEFAULT_PARAMS = Path("params.yaml")


@dataclass
class Candidate:
    """The model ``dvc repro`` produced, the figure it is judged by, and the verdict."""

    artifact: ModelArtifact
    verdict: GateVerdict
    accuracy_source: str
    policy: GatePolicy
    record: EvaluationRecord | None = None
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

    @property
    def evaluation(self) -> dict[str, Any]:
        return self.record.model_dump(mode="json") if self.record is not None else {}

    def gate_text(self) -> str:
        return self.verdict.text()

    def check_gate(self, *, force: bool) -> None:
        self.verdict.enforce(
            f"refusing to deploy {self.card.version}",
            force=force,
            hint=f"the threshold comes from {self.policy.source}; improve the model and run 'dvc repro' again, "
            "or deploy it anyway with --force (recorded in the registry)",
        )

    def compare(self, champion: str, accuracy: float | None, data_version: str | None) -> Comparison:
        """Champion/challenger against the version taking traffic (``data_version`` None: unknown)."""
        same = data_version is None or data_version == self.card.data_version
        return Comparison(champion, accuracy, self.accuracy, self.policy.max_regression, same_data=same)


@dataclass
class DeployResult:
    """What a deployer did (or, on a dry run, would do), for the CLI to print."""

    dry_run: bool
    actions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    version: str | None = None
    how_to_call: list[str] = field(default_factory=list)
    changed: bool = False
    comparison: Comparison | None = None
    error: EdgeError | None = None  # raised by the CLI after printing the rest (a refused plan, a failed reload)


def deploy_user() -> str:
    """Who is deploying (recorded with every deployment and every --force)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database (containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class Champion:
    """The version taking traffic, as the target records it."""

    name: str  # "version 3"
    accuracy: float | None
    data_version: str | None  # None: unknown
    same_model: bool = False  # it IS the candidate (same model.onnx)


def judge(
    candidate: Candidate, result: DeployResult, champion: Champion | None, *, force: bool, recorded_in: str
) -> QualityGateError | None:
    """The quality gate, then champion/challenger: add what each says to ``result``; return the
    refusal (None when the candidate may be deployed, or ``force`` overrides)."""
    result.actions.append(f"quality gate ({candidate.policy.source}): {candidate.gate_text()}")
    refusal: QualityGateError | None = None
    try:
        candidate.check_gate(force=force)
    except QualityGateError as exc:
        refusal = exc
    if not candidate.passed and force:
        result.notes.append(f"--force: deploying although {candidate.gate_text()} (recorded {recorded_in})")
    if champion is None or champion.same_model:
        what = "nothing takes traffic yet" if champion is None else f"{champion.name} is this model already"
        result.actions.append(f"champion/challenger: {what}; not compared")
        return refusal
    comparison = candidate.compare(champion.name, champion.accuracy, champion.data_version)
    result.comparison = comparison
    result.actions.append(f"champion/challenger: {comparison.text()}")
    if not comparison.ok:
        if force:
            result.notes.append(f"--force: deploying although {comparison.text()} (recorded {recorded_in})")
        elif refusal is None:
            try:
                comparison.enforce(f"refusing to deploy {candidate.card.version}")
            except QualityGateError as exc:
                refusal = exc
    return refusal


def was_forced(candidate: Candidate, result: DeployResult, *, force: bool) -> bool:
    """Whether --force overrode anything (the gate or the champion check)."""
    return force and (not candidate.passed or (result.comparison is not None and not result.comparison.ok))


class Deployer(Protocol):
    """One target's registry + endpoint."""

    target: str

    def configure(self, *, traffic: int | None = None, wait_s: float | None = None, **options: Any) -> None:
        """CLI options (canary share, how long to wait for a server, confirmation, progress)."""

    def deploy(self, candidate: Candidate, *, force: bool, dry_run: bool) -> DeployResult:
        """Register ``candidate`` (if new) and send the endpoint's traffic to it."""

    def deploy_version(self, version: str, *, dry_run: bool, force: bool = False) -> DeployResult:
        """Send the endpoint's traffic to an already registered version."""

    def rollback(self, *, dry_run: bool) -> DeployResult:
        """Return the endpoint to the version deployed before the current one."""


def gate_policy(repo: Path, params_path: Path, *, min_accuracy: float | None = None) -> tuple[GatePolicy, list[str]]:
    """The threshold and tolerance deploy enforces: the committed params.yaml's (the working tree's,
    with a note, where none is committed). ``min_accuracy`` may only raise the threshold."""
    notes: list[str] = []
    committed = committed_params(repo, params_path, require=["evaluate"])
    try:
        working = load_params(params_path) if params_path.is_file() else None
    except ConfigError:
        if committed is None:
            raise
        working = None  # an unreadable working copy does not matter when the committed one decides
    if committed is not None:
        params, source = committed
        if working is not None and working.evaluate.min_accuracy != params.evaluate.min_accuracy:
            notes.append(
                f"the working tree's {params_path.name} sets evaluate.min_accuracy {working.evaluate.min_accuracy:.4f} "
                f"(an experiment's override?); deploy enforces the committed {params.evaluate.min_accuracy:.4f}"
            )
    elif working is not None:
        params, source = load_params(params_path, require=["evaluate"]), f"{params_path.name} (working tree)"
        notes.append(f"{params_path.name} is not committed here: the quality gate comes from the working tree")
    else:
        raise DataError(f"{params_path} not found: it holds the quality gate (evaluate.min_accuracy)")
    threshold = params.evaluate.min_accuracy
    if min_accuracy is not None:
        if not 0.0 <= min_accuracy <= 1.0:
            raise UsageError(f"--min-accuracy {min_accuracy}: expected a fraction between 0 and 1")
        if min_accuracy < threshold:
            raise UsageError(
                f"--min-accuracy {min_accuracy} is below the committed quality gate {threshold} ({source})",
                hint="--min-accuracy can only make the gate stricter; --force deploys below it and is recorded",
            )
        threshold, source = min_accuracy, "--min-accuracy"
    policy = GatePolicy(min_accuracy=threshold, max_regression=params.deploy.max_regression, source=source)
    return policy, notes


def load_candidate(model_dir: Path, *, evaluation_path: Path, policy: GatePolicy) -> Candidate:
    """Read the model folder (checking every file against the card's sha256) and the figure it is
    judged by; judge it with ``policy``."""
    artifact = ModelArtifact.read(model_dir)
    artifact.verify()
    card = artifact.card
    notes: list[str] = []
    record = EvaluationRecord.read(evaluation_path)
    if record is None:
        accuracy = card.metrics.test_accuracy
        source = f"the model card (training's test figure; no {evaluation_path.name})"
        notes.append(f"{evaluation_path} not found: judging the model by its card's test accuracy")
    elif record.model_sha256 != card.onnx_sha256:
        raise DataError(
            f"{evaluation_path} is the evaluation of model {record.model_version} (model.onnx sha256 "
            f"{record.model_sha256[:12]}...), but {model_dir} holds model {card.version} (sha256 "
            f"{card.onnx_sha256[:12]}...): its figures belong to another model",
            hint="run 'dvc repro' so the evaluate stage scores this model (or 'dvc checkout' to restore the pair)",
        )
    else:
        accuracy = record.accuracy
        source = f"{evaluation_path.name} (ONNX Runtime, {record.count} test images, model sha256 {record.model_sha256[:12]})"
    return Candidate(artifact, policy.judge(accuracy), source, policy, record, notes)
