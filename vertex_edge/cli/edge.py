"""``python edge.py``: the command-line interface. Each command group lives in the module named
after it (``setup``, ``data``, ``experiments``, ``train``, ``serve``, ``webapp``, ``monitor``, ``teardown``) and
is registered here, once.

Library code raises typed :class:`~vertex_edge.errors.EdgeError`; only :func:`main` (through
:func:`vertex_edge.cli.app.run_command`) maps them to messages and exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from vertex_edge.cli import data, experiments, monitor, serve, setup, teardown, train, webapp
from vertex_edge.cli.app import ConfigOption, RepoOption, VerboseOption, configure_logging, new_app, run_command
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
def _root(ctx: typer.Context, repo: RepoOption = None, config: ConfigOption = None, verbose: VerboseOption = False) -> None:
    configure_logging(verbose)
    ctx.obj = AppContext.create(repo, config)


for _commands in (setup, data, experiments, train, serve, webapp, monitor, teardown):
    _commands.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``edge.py``; return the exit code."""
    return run_command(typer.main.get_command(app), argv, prog_name="edge.py")


