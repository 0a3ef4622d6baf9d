"""Monitoring settings that live in ``edge.yaml`` (the ``monitoring`` section) and what follows
from them: where records, feedback and reports live per target (:class:`MonitoringPaths`), the
capture environment of a deployed server, and the web app's privacy line.

:class:`MonitoringConfig` is the ``monitoring`` field of :class:`vertex_edge.config.EdgeConfig`;
this module imports pydantic only, so the config module stays light.

Where things go, per target (``edge.py serve``/the Vertex deployment write records there, the web
app writes feedback there, ``edge.py monitor`` reads both):

* local: ``<storage root>/monitoring/<model>/records`` and ``.../feedback``;
* gcp: ``gs://<bucket>/monitoring/<model>/records`` and ``.../feedback``;
* reports: ``<storage root>/monitoring/<model>/reports/<time>`` on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the config module imports this one
    from vertex_edge.config import EdgeConfig

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


@dataclass(frozen=True)
class MonitoringPaths:
    records: str  # folder or gs:// prefix of the captured records
    feedback: str  # the same for feedback labels
    reports: Path  # where reports are written (one folder per run)

    @classmethod
    def for_config(cls, config: EdgeConfig, repo: Path) -> MonitoringPaths:
        local = config.storage_root(repo) / "monitoring" / config.model.name
        if config.target == "gcp" and config.gcp is not None:
            base = f"gs://{config.gcp.bucket_name}/monitoring/{config.model.name}"
            return cls(f"{base}/records", f"{base}/feedback", local / "reports")
        return cls(str(local / "records"), str(local / "feedback"), local / "reports")


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
