"""DVC stages: each is ``python -m steps.<name>`` with explicit paths (dvc-step*.yaml owns them).

A stage module is a thin ``main(argv=None)`` over pure functions in :mod:`vertex_edge`.

A stage that fails under DVC loses nothing: DVC removed its outputs before running it, so
:func:`run_step` checks the previous ones out again (:func:`vertex_edge.stage_files.restore_outputs`)
and says so. Not after a lock conflict (exit 3): then another process is writing those outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from vertex_edge.dvc_env import STAGE_ENV
from vertex_edge.errors import EdgeError
from vertex_edge.stage_files import restore_outputs


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
        return after_failure(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return after_failure(130)
    except Exception:  # a bug: restore the outputs, then show the traceback
        after_failure(1)
        raise
    return 0


def after_failure(code: int) -> int:
    """Under DVC, put back the outputs DVC removed before this stage ran (not after a lock conflict)."""
    stage = os.environ.get(STAGE_ENV)
    if stage and code != 3:
        print(f"  {restore_outputs(Path.cwd(), stage)}", file=sys.stderr, flush=True)
    return code


def exit_process(code: int) -> None:
    """End the stage's process with ``code``. After an interrupt (130) the run is already
    recorded and every output is atomic, so native libraries' teardown is skipped: TensorFlow
    can abort in it when a step was interrupted mid-batch."""
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
