"""The ``monitor`` section of ``params.yaml``, typed: the monitor's thresholds.

``params.yaml`` belongs to DVC; :class:`vertex_edge.params.Params` keeps sections it does not
know, and this model validates the ``monitor`` one. Missing keys take the defaults below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vertex_edge.config import load_yaml_model, validate_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MinEffect(_Strict):
    """A statistically significant difference must also be at least this large to count as drift
    (large windows make tiny, harmless differences significant)."""

    classes: float = Field(default=0.05, ge=0, le=1, description="total variation distance of predicted-class shares")
    distribution: float = Field(default=0.05, ge=0, le=1, description="Kolmogorov-Smirnov distance")
    ood_rate: float = Field(default=0.02, ge=0, le=1, description="flagged share above the calibrated rate")
    accuracy_drop: float = Field(default=0.03, ge=0, le=1, description="accuracy below the held-out accuracy")


class OodParams(_Strict):
    fpr: float = Field(default=0.02, gt=0, lt=0.5, description="false-positive rate of the OOD flag on held-out images")


class MonitorParams(_Strict):
    """``params.yaml`` ``monitor:``."""

    window: int = Field(default=500, ge=10, description="records compared when neither --last nor --since is given")
    min_records: int = Field(default=200, ge=10, description="fewer records: 'not enough data', no verdict")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="false-alarm rate per window, shared by all checks")
    min_labels: int = Field(default=50, ge=1, description="feedback labels needed before accuracy is checked")
    min_effect: MinEffect = MinEffect()
    ood: OodParams = OodParams()

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, data: Any) -> Any:
        return data or {}


class _ParamsFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    monitor: dict[str, Any] | None = None


def monitor_params(data: Any, source: str = "params.yaml") -> MonitorParams:
    """The ``monitor`` section of parsed ``params.yaml`` data (defaults when it is absent)."""
    section = data.get("monitor") if isinstance(data, dict) else None
    return validate_model(MonitorParams, section or {}, f"{source} (monitor section)")


def load_monitor_params(path: Path) -> MonitorParams:
    """Read ``params.yaml`` and validate its ``monitor`` section; :class:`ConfigError` names bad keys."""
    parsed = load_yaml_model(path, _ParamsFile, what="params file")
    return monitor_params({"monitor": parsed.monitor}, f"params file {Path(path).name}")
