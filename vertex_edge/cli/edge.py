"""``python edge.py``: the command-line interface. Each command group lives in the module named
after it (``setup``, ``data``, ``experiments``, ``train``, ``serve``, ``webapp``, ``teardown``) and
is registered here, once.

Library code raises typed :class:`~vertex_edge.errors.EdgeError`; only :func:`main` (through
:func:`vertex_edge.cli.app.run_command`) maps them to messages and exit codes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from vertex_edge.cli import data, experiments, serve, setup, teardown, train, webapp
from vertex_edge.cli.app import new_app, run_command
from vertex_edge.cli.context import AppContext

app = new_app(
    "edge.py",
    help=(
        "vertex-edge: train, track and deploy the Fashion-MNIST model, locally or on Google Cloud.\n\n"
        "Start with 'python edge.py setup', then 'python edge.py data seed' and 'dvc repro'."
    ),
    no_args_is_help=True,
)


@app.callback()
def _root(
    ctx: typer.Context,
    repo: Annotated[
        Optional[Path],
        typer.Option("--repo", envvar="EDGE_REPO", help="Repository root (default: the current folder)."),
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", envvar="EDGE_CONFIG", help="Path to edge.yaml (default: <repo>/edge.yaml)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = AppContext.create(repo, config)


for _commands in (setup, data, experiments, train, serve, webapp, teardown):
    _commands.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``edge.py``; return the exit code."""
    return run_command(typer.main.get_command(app), argv, prog_name="edge.py")


