"""The quality gate: ONE rule for whether a model is good enough, used by the ``evaluate`` stage,
``python -m steps.gate`` and ``deploy-vertex.py``.

* :class:`GateVerdict` - a model passes when its test accuracy is at least ``evaluate.min_accuracy``;
  the verdict keeps the figures (threshold, accuracy, margin, passed) so every place that shows or
  stores one says the same thing.
* :class:`EvaluationRecord` - what the ``evaluate`` stage measured, for WHICH model (its
  ``model.onnx`` sha256): deploy judges a model only by a record that names that model.
* :class:`GatePolicy` - the threshold and the champion/challenger tolerance deploy enforces, and
  where they came from (the committed ``params.yaml``, not an experiment's working tree).
* :class:`Comparison` - champion/challenger: a candidate more than ``deploy.max_regression`` below
  the version taking traffic is refused (compared only on the same data version).

``evaluate`` never aborts the pipeline on a failed gate: it records the verdict (the experiment is
kept and can be compared); the exit code comes from ``python -m steps.gate`` and from deploy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vertex_edge.errors import DataError, QualityGateError
from vertex_edge.fsutil import atomic_write_json


class GateVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    accuracy: float = Field(ge=0, le=1, description="the model's test accuracy")
    min_accuracy: float = Field(ge=0, le=1, description="params.yaml evaluate.min_accuracy")

    @property
    def passed(self) -> bool:
        return self.accuracy >= self.min_accuracy

    @property
    def margin(self) -> float:
        """How far above (positive) or below (negative) the threshold the model is."""
        return self.accuracy - self.min_accuracy

    def text(self) -> str:
        relation = ">=" if self.passed else "is below"
        return f"test accuracy {self.accuracy:.4f} {relation} the quality gate {self.min_accuracy:.4f}"

    def record(self) -> dict[str, Any]:
        """The verdict as stored (evaluation report, registry metadata)."""
        return {"threshold": self.min_accuracy, "accuracy": round(self.accuracy, 6), "margin": round(self.margin, 6),
                "passed": self.passed}  # fmt: skip

    def enforce(self, what: str, *, force: bool = False, hint: str | None = None) -> None:
        """Raise :class:`QualityGateError` naming ``what`` when the model fails (unless ``force``)."""
        if self.passed or force:
            return
        raise QualityGateError(
            f"{what}: test accuracy {self.accuracy:.4f} is below the quality gate "
            f"evaluate.min_accuracy {self.min_accuracy:.4f}",
            hint=hint or "improve the model (params.yaml 'train') or, knowingly, lower evaluate.min_accuracy",
        )


def judge(accuracy: float, min_accuracy: float) -> GateVerdict:
    return GateVerdict(accuracy=accuracy, min_accuracy=min_accuracy)


class GatePolicy(BaseModel):
    """What deploy enforces, and where each figure came from."""

    model_config = ConfigDict(frozen=True)

    min_accuracy: float = Field(ge=0, le=1)
    max_regression: float = Field(ge=0, le=1)
    source: str = Field(description="e.g. 'params.yaml at commit 3f2a9c1d'")

    def judge(self, accuracy: float) -> GateVerdict:
        return judge(accuracy, self.min_accuracy)


class EvaluationRecord(BaseModel):
    """``reports/evaluation.json``: the evaluate stage's figures for one model (named by sha256)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model_version: str
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    accuracy: float = Field(ge=0, le=1)
    log_loss: float
    count: int = Field(ge=0)
    data_version: str = ""
    sacred_run_id: str | None = None
    gate: dict[str, Any] = Field(default_factory=dict, description="the verdict under the params evaluate ran with")
    per_class: dict[str, dict[str, float]] = Field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> EvaluationRecord | None:
        """The record at ``path``; None when there is none; :class:`DataError` when it is unreadable."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is not valid JSON ({exc})", hint="run 'dvc repro' to evaluate again") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "(record)"
            raise DataError(
                f"{path} is not an evaluation record ({where}: {first.get('msg')})",
                hint="it was written by an older version: run 'dvc repro' to evaluate again",
            ) from None

    def write(self, path: Path) -> None:
        atomic_write_json(path, self.model_dump(mode="json"))


@dataclass(frozen=True)
class Comparison:
    """Champion (the version taking traffic) against challenger (the candidate)."""

    champion: str  # "version 3"
    champion_accuracy: float | None
    challenger_accuracy: float
    max_regression: float
    same_data: bool = True

    @property
    def comparable(self) -> bool:
        return self.champion_accuracy is not None and self.same_data

    @property
    def delta(self) -> float:
        return self.challenger_accuracy - (self.champion_accuracy or 0.0)

    @property
    def ok(self) -> bool:
        return not self.comparable or self.delta >= -self.max_regression - 1e-12

    def text(self) -> str:
        if self.champion_accuracy is None:
            return f"champion {self.champion} has no recorded test accuracy: not compared"
        head = (
            f"challenger {self.challenger_accuracy:.4f} vs champion {self.champion} {self.champion_accuracy:.4f} "
            f"({self.delta:+.4f}; tolerance -{self.max_regression:.4f})"
        )
        if not self.same_data:
            return head + ": measured on different data versions, not enforced"
        return head + (": ok" if self.ok else ": REFUSED")

    def enforce(self, what: str, *, force: bool = False) -> None:
        if self.ok or force:
            return
        raise QualityGateError(
            f"{what}: test accuracy {self.challenger_accuracy:.4f} is {-self.delta:.4f} below {self.champion} "
            f"({self.champion_accuracy:.4f}), more than deploy.max_regression {self.max_regression:.4f}",
            hint="improve the model, or deploy it anyway with --force (recorded in the registry)",
        )
