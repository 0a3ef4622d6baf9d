"""What the routes see: the current model (swapped whole on a reload) and the load status."""

from __future__ import annotations

from vertex_edge.monitoring.capture import Capture
from vertex_edge.serving.model import LoadedModel


class ServingState:
    """The served model and how loading it went, and the prediction capture (None: off);
changed only on the event loop."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.status = "loading"
        self.error: str | None = None
        self.capture: Capture | None = None
        # following an endpoint: the version it points at, and why loading it failed (if it did)
        self.target_version: str | None = None
        self.reload_error: str | None = None
