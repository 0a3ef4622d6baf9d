"""The quality gate: ONE rule for whether a model is good enough, used by the ``evaluate`` stage
and by ``deploy-vertex.py``.

A model passes when its test accuracy is at least ``evaluate.min_accuracy`` (params.yaml). The
:class:`GateVerdict` records the figures (threshold, accuracy, margin, passed) so every place that
shows or stores a verdict says the same thing.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from vertex_edge.errors import QualityGateError


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
