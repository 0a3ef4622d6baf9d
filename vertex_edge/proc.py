"""The one helper that runs subprocesses: argument lists only, never a shell, always checked."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from vertex_edge.errors import ExternalToolError

log = logging.getLogger(__name__)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` (a list, no shell). Raise :class:`ExternalToolError` if it fails.

    Secrets must never be passed in ``argv``: use ``input`` (stdin), ``env`` or a file.
    """
    argv = [str(a) for a in argv]
    if not argv:
        raise ValueError("empty argv")
    log.debug("run %s (cwd=%s)", argv[0], cwd)
    try:
        proc = subprocess.run(  # noqa: S603 - argument list, no shell
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            input=input,
            capture_output=capture,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise ExternalToolError(f"'{argv[0]}' was not found on PATH", hint=install_hint(argv[0])) from None
    except subprocess.TimeoutExpired:
        raise ExternalToolError(f"'{_display(argv)}' did not finish within {timeout:g} s") from None
    if check and proc.returncode != 0:
        tail = (proc.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-15:]
        out_tail = (proc.stdout or b"").decode("utf-8", "replace").strip().splitlines()[-5:]
        detail = "\n".join(tail or out_tail)
        raise ExternalToolError(
            f"'{_display(argv)}' failed with exit code {proc.returncode}" + (f":\n{detail}" if detail else "")
        )
    return proc


def _display(argv: Sequence[str]) -> str:
    # show the tool and subcommand, not every argument
    shown = [Path(argv[0]).name, *argv[1:4]]
    return " ".join(shown) + (" ..." if len(argv) > 4 else "")


_HINTS = {
    "git": "install git (https://git-scm.com/downloads)",
    "kubectl": "install kubectl: 'gcloud components install kubectl' or https://kubernetes.io/docs/tasks/tools/",
    "helm": "install helm: https://helm.sh/docs/intro/install/",
    "gcloud": "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install",
    "docker": "install Docker: https://docs.docker.com/get-docker/",
}


def install_hint(tool: str) -> str | None:
    return _HINTS.get(Path(tool).name)


def which(tool: str) -> str | None:
    return shutil.which(tool)
