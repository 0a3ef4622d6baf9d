"""``python deploy-vertex.py``: register the trained model and point an endpoint at it.

The target-independent part lives here: reading the candidate model (card, test metrics) and
the quality gate. Each target has a *deployer* with the :class:`Deployer` interface:

* ``local`` - :class:`vertex_edge.deploy.local.LocalDeployer`: a registry and endpoint
  traffic map under the storage root, served by ``python edge.py serve``.
* ``gcp`` - ``vertex_edge.deploy.vertex`` (Vertex AI Model Registry + Endpoint), picked up by
  :func:`get_deployer` as soon as that module exists; until then a clear :class:`UsageError`.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vertex_edge.errors import ConfigError, DataError, QualityGateError, UsageError

if TYPE_CHECKING:
    from vertex_edge.config import EdgeConfig

DEFAULT_MODEL_DIR = Path("models/fashion-mnist")
DEFAULT_METRICS = Path("metrics/evaluate.json")
DEFAULT_PARAMS = Path("params.yaml")


@dataclass
class Candidate:
    """The model ``dvc repro`` produced, with its test accuracy and the quality gate."""

    model_dir: Path
    card: dict[str, Any]
    accuracy: float
    accuracy_source: str
    min_accuracy: float
    evaluation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.accuracy >= self.min_accuracy

    @property
    def onnx_sha256(self) -> str:
        return str(self.card["artifacts"]["model.onnx"]["sha256"])

    def gate_text(self) -> str:
        relation = ">=" if self.passed else "is below"
        return f"test accuracy {self.accuracy:.4f} {relation} the quality gate {self.min_accuracy:.4f}"

    def check_gate(self, *, force: bool) -> None:
        if self.passed or force:
            return
        raise QualityGateError(
            f"refusing to deploy {self.card.get('version')}: test accuracy {self.accuracy:.4f} "
            f"({self.accuracy_source}) is below the quality gate evaluate.min_accuracy {self.min_accuracy:.4f}",
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
    """Read the model card, the test accuracy (``metrics/evaluate.json``, else the card) and
    the gate (``params.yaml`` ``evaluate.min_accuracy``, unless ``min_accuracy`` is given)."""
    card_path = model_dir / "model_card.json"
    if not model_dir.is_dir():
        raise DataError(f"model folder {model_dir} does not exist", hint="train it first: 'dvc repro'")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{card_path} not found", hint="train the model first: 'dvc repro'") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{card_path} is not valid JSON: {exc}") from None
    if not isinstance(card, dict) or not isinstance(card.get("version"), str):
        raise DataError(f"{card_path}: expected a model card with a 'version'")
    onnx = (card.get("artifacts") or {}).get("model.onnx") or {}
    if not onnx.get("sha256"):
        raise DataError(f"{card_path}: 'artifacts' has no model.onnx sha256")
    notes: list[str] = []
    evaluation: dict[str, Any] = {}
    card_accuracy = (card.get("metrics") or {}).get("test_accuracy")
    if metrics_path.is_file():
        try:
            evaluation = json.loads(metrics_path.read_text(encoding="utf-8"))
            accuracy = float(evaluation["accuracy"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{metrics_path}: expected JSON with a numeric 'accuracy' ({exc})") from None
        source = str(metrics_path)
        if isinstance(card_accuracy, (int, float)) and abs(float(card_accuracy) - accuracy) > 0.02:
            notes.append(
                f"{metrics_path} says {accuracy:.4f} but the model card says {float(card_accuracy):.4f}: "
                "the evaluation may be stale (run 'dvc repro')"
            )
    elif isinstance(card_accuracy, (int, float)):
        accuracy, source = float(card_accuracy), "model card; no metrics/evaluate.json"
        notes.append(f"{metrics_path} not found: using the model card's test accuracy")
    else:
        raise DataError(
            f"no test accuracy: {metrics_path} does not exist and the model card has no metrics.test_accuracy",
            hint="run 'dvc repro' (the evaluate stage writes it)",
        )
    if min_accuracy is None:
        min_accuracy = _gate_from_params(params_path)
    elif not 0.0 <= min_accuracy <= 1.0:
        raise UsageError(f"--min-accuracy {min_accuracy}: expected a fraction between 0 and 1")
    return Candidate(model_dir, card, accuracy, source, min_accuracy, evaluation, notes)


def _gate_from_params(params_path: Path) -> float:
    import yaml

    try:
        data = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(
            f"{params_path} not found: it holds the quality gate evaluate.min_accuracy",
            hint="pass --min-accuracy, or run from the repository root",
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{params_path} is not valid YAML: {exc}") from None
    value = (data.get("evaluate") or {}).get("min_accuracy") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"{params_path}: evaluate.min_accuracy is {value!r}; expected a fraction between 0 and 1",
            hint="set it in params.yaml or pass --min-accuracy",
        )
    return float(value)


def get_deployer(config: EdgeConfig, repo: Path) -> Deployer:
    """The deployer for ``config.target``."""
    if config.target == "local":
        from vertex_edge.deploy.local import LocalDeployer

        return LocalDeployer.from_config(config, repo)
    if config.target == "gcp":
        if importlib.util.find_spec("vertex_edge.deploy.vertex") is None:
            raise UsageError(
                "deploying to Vertex AI (target 'gcp') is not available yet",
                hint="deploy locally: set 'target: local' in edge.yaml (or run 'python edge.py setup --target local')",
            )
        from vertex_edge.deploy import vertex  # type: ignore[attr-defined]

        return vertex.VertexDeployer.from_config(config, repo)
    raise UsageError(f"unknown target {config.target!r}; expected 'local' or 'gcp'")
