"""The ``monitor`` section of ``params.yaml``, for ``edge.py monitor``: its typed models live with
the other sections in :mod:`vertex_edge.params` (one typed source: the training export reads
``monitor.ood.fpr`` from the same models). Here: reading that section on its own, so a monitor
run does not depend on the other sections being valid. Missing keys take the models' defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from vertex_edge.config import load_yaml_model, validate_model
from vertex_edge.params import MinEffect, MonitorParams, OodParams

__all__ = ["MinEffect", "MonitorParams", "OodParams", "load_monitor_params", "monitor_params"]


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
