"""DVC stages: each is ``python -m steps.<name>`` with explicit paths (dvc-step*.yaml owns them).

A stage module is a thin ``main(argv=None)`` over pure functions in :mod:`vertex_edge`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from vertex_edge.errors import EdgeError


def run_step(
    parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], None], argv: list[str] | None
) -> int:
    """Parse ``argv`` and run ``body``; map library errors to a message and exit code."""

    args = parser.parse_args(argv)
    try:
        body(args)
    except EdgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def exit_process(code: int) -> None:
    """End the stage's process with ``code``. After an interrupt (130) the run is already
    recorded and every output is atomic, so native libraries' teardown is skipped: TensorFlow
    can abort in it when a step was interrupted mid-batch."""
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
