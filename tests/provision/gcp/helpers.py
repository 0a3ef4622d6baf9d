"""Run ``setup --target gcp`` and ``teardown`` on a prepared GcpEnv (fakes), capturing what they print."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from tests.gcp.conftest import gcp_config
from tests.gcp.fakes import PROJECT, REGION
from vertex_edge.cli import setup_gcp
from vertex_edge.cli import teardown as teardown_cli
from vertex_edge.cli.context import AppContext
from vertex_edge.config import EdgeConfig
from vertex_edge.provision.engine import Action
from vertex_edge.provision.gcp.env import GcpEnv

LOC = f"projects/{PROJECT}/locations/{REGION}"
BUCKET = f"{PROJECT}-edge"


def app_context(tmp_path: Path, out: io.StringIO) -> AppContext:
    console = Console(file=out, width=200, highlight=False)
    return AppContext(repo=tmp_path, config_path=tmp_path / "edge.yaml", console=console)


def run_setup(
    env: GcpEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, dry_run: bool = False,
    config: EdgeConfig | None = None, config_action: Action = Action.KEEP,
) -> str:  # fmt: skip
    """setup_gcp.run on ``env``; returns what it printed."""
    out = io.StringIO()
    monkeypatch.setattr(setup_gcp, "make_env", lambda *a, **k: env)
    monkeypatch.setattr("vertex_edge.proc.which", lambda tool: f"/usr/bin/{tool}")
    try:
        setup_gcp.run(
            app_context(tmp_path, out), config or gcp_config(), config_action=config_action, yes=True, dry_run=dry_run
        )
    finally:
        env._kube = None  # each run opens its own kubeconfig, like the CLI
    return out.getvalue()


def run_teardown(
    env: GcpEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, dry_run: bool = False, delete_data: bool = False
) -> str:
    """teardown on ``env``; returns what it printed."""
    out = io.StringIO()
    app_ctx = app_context(tmp_path, out)
    app_ctx.set_config(gcp_config())
    monkeypatch.setattr(teardown_cli, "make_env", lambda *a, **k: env)
    teardown_cli.teardown(SimpleNamespace(obj=app_ctx), yes=True, dry_run=dry_run, delete_data=delete_data)
    return out.getvalue()
