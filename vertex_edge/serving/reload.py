"""Follow a local registry endpoint: when ``edge.py``/``deploy-vertex.py`` points it at another
version, load that version, warm it up, then swap it in.

The swap is one reference assignment: batches already running finish on the old model (the
batcher took its reference), the next batch uses the new one; no request is dropped or fails.
A version that cannot be loaded is logged and the current model keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from vertex_edge.errors import EdgeError
from vertex_edge.registry import served_version
from vertex_edge.serving.model import LoadedModel

log = logging.getLogger("vertex_edge.serving")


class _State(Protocol):
    model: LoadedModel | None


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


async def follow_endpoint(
    endpoint_file: Path, state: _State, load: Callable[[str], LoadedModel], interval_s: float
) -> None:
    """Poll ``endpoint_file`` every ``interval_s`` seconds until cancelled."""
    loop = asyncio.get_running_loop()
    seen = None  # check once at start too: a deployment may have happened while loading
    while True:
        signature = _signature(endpoint_file)
        if signature is not None and signature != seen:
            seen = signature
            try:
                version, folder = served_version(endpoint_file)
            except EdgeError as exc:
                log.warning("cannot read %s: %s", endpoint_file, exc.message)
                version, folder = None, None
            current = state.model
            if version is not None and folder is not None and (current is None or current.registry_version != version):
                log.info("endpoint now serves version %s: loading %s", version, folder)
                try:
                    model = await loop.run_in_executor(None, load, str(folder))
                except Exception as exc:  # noqa: BLE001 - keep serving the current model
                    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                    log.error("cannot load version %s, still serving the previous model: %s", version, message)
                else:
                    old = state.model
                    state.model = model
                    log.info(
                        "now serving version %s (model %s), was %s",
                        version,
                        model.version,
                        old.registry_version if old else None,
                        extra={"fields": {"model_version": model.version, "registry_version": version}},
                    )
        await asyncio.sleep(interval_s)
