"""What both command lines share: a typer app with the house settings, and the ONE mapping from
errors to messages and exit codes (2 bad input or config, 3 lock held, 1 otherwise, 130 Ctrl-C).
No traceback is shown for a user error."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

from vertex_edge.errors import EdgeError

#: the options both command lines take, spelled once
RepoOption = Annotated[
    Optional[Path], typer.Option("--repo", envvar="EDGE_REPO", help="Repository root (default: the current folder).")
]
ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", envvar="EDGE_CONFIG", help="Path to edge.yaml (default: <repo>/edge.yaml)."),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")]


def configure_logging(verbose: bool) -> None:
    """Library logs on stderr: warnings, or everything with ``--verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


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


def run_command(
    command: typer.core.TyperCommand | typer.core.TyperGroup, argv: Sequence[str] | None, *, prog_name: str
) -> int:
    """Run a typer command with the one mapping from errors to messages and exit codes
    (shared by ``edge.py`` and ``deploy-vertex.py``): typed errors print their message and
    hint, usage errors their usage line; no traceback for either."""
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
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"  [dim]hint:[/] {escape(hint)}")
