"""``edge.py setup --target gcp`` (provisioning lands with the GCP issue)."""

from __future__ import annotations

from vertex_edge.cli.context import AppContext
from vertex_edge.config import EdgeConfig
from vertex_edge.errors import UsageError
from vertex_edge.provision.base import Action


def run(app_ctx: AppContext, config: EdgeConfig, *, config_action: Action, yes: bool, dry_run: bool) -> None:
    raise UsageError("the gcp target is not available in this version; use --target local")


def state_store(app_ctx: AppContext, config: EdgeConfig):  # noqa: ANN201
    raise UsageError("the gcp target is not available in this version; use --target local")


def dashboard(app_ctx: AppContext, config: EdgeConfig) -> None:
    raise UsageError("the gcp target is not available in this version; use --target local")
