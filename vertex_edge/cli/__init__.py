"""``python edge.py``: the command-line interface.

Library code raises typed :class:`~vertex_edge.errors.EdgeError`; only :func:`main` maps them
to messages and exit codes (2 for bad input or config, 3 for a held lock, 1 otherwise,
130 for Ctrl-C). No traceback is shown for a user error.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from vertex_edge.cli.context import AppContext


def new_app(name: str, **settings: object) -> typer.Typer:
    """A typer app with the settings every vertex-edge command line shares."""
    return typer.Typer(
        name=name,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        **settings,  # type: ignore[arg-type]
    )


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


def _register() -> None:
    from vertex_edge.cli import data, experiments, setup

    setup.register(app)
    data.register(app)
    experiments.register(app)
    from vertex_edge.cli import teardown

    teardown.register(app)
    from vertex_edge.cli import serve as serve_cli

    serve_cli.register(app)
    from vertex_edge.cli import webapp

    webapp.register(app)
    from vertex_edge.cli import train as train_cli

    train_cli.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``edge.py``; return the exit code."""
    _register()
    return run_command(typer.main.get_command(app), argv, prog_name="edge.py")


def run_command(
    command: typer.core.TyperCommand | typer.core.TyperGroup, argv: Sequence[str] | None, *, prog_name: str
) -> int:
    """Run a typer command with the one mapping from errors to messages and exit codes
    (shared by ``edge.py`` and ``deploy-vertex.py``): typed errors print their message and
    hint, usage errors their usage line; no traceback for either."""
    from typer.exceptions import TyperException

    from vertex_edge.errors import EdgeError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name=prog_name, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except EdgeError as exc:
        print_error(exc.message, exc.hint)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("\naborted\n")
        return 130
    except TyperException as exc:  # usage errors: bad option, missing argument, no such command
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(getattr(exc, "exit_code", 2))


def print_error(message: str, hint: str | None) -> None:
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"  [dim]hint:[/] {escape(hint)}")
