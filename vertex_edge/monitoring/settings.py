"""Monitoring settings that live in ``edge.yaml`` (the ``monitoring`` section) and what follows
from them: the capture environment of a deployed server, and the web app's privacy line.

:class:`MonitoringConfig` is meant to be a field of :class:`vertex_edge.config.EdgeConfig`
(``monitoring: MonitoringConfig = MonitoringConfig()``); it imports pydantic only, so the config
module stays light.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

GCS_FLUSH_S = 10.0


class MonitoringConfig(BaseModel):
    """``edge.yaml`` ``monitoring:``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    capture: bool = Field(default=True, description="capture predictions (records, never images)")
    sample_rate: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="share of instances captured by the server, and logged by the Vertex AI endpoint",
    )
    request_response_logging: bool = Field(
        default=True,
        description="turn on the Vertex AI endpoint's request-response logging (BigQuery) at sample_rate; "
        "it keeps each request, i.e. the 28x28 image the model saw",
    )

    def server_env(self, records_uri: str) -> dict[str, str]:
        """The prediction server's capture variables (``edge.py serve``, the Vertex deployment)."""
        if not self.capture or self.sample_rate == 0:
            return {}
        env = {"EDGE_CAPTURE_URI": records_uri, "EDGE_CAPTURE_SAMPLE_RATE": f"{self.sample_rate:g}"}
        if records_uri.startswith("gs://"):
            env["EDGE_CAPTURE_FLUSH_S"] = f"{GCS_FLUSH_S:g}"  # one object per flush: fewer, larger objects
        return env


def privacy_line(*, model_input_logged: bool = False) -> str:
    """What the web app says is kept, exactly."""
    kept = (
        "Your image is classified in memory and never stored. For monitoring we keep, for each prediction, "
        "the answer (class and probabilities), a request id, the time and a few numbers that summarise the "
        "image (brightness, size, position), and the correct label if you answer \u201cWas this right?\u201d."
    )
    if model_input_logged:
        kept += " This deployment also logs the 28\u00d728 greyscale version the model saw."
    return kept
