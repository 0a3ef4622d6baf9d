"""Follow a local registry endpoint: when ``edge.py``/``deploy-vertex.py`` points it at another
version, load that version, warm it up, then swap it in - and say so in ``serving-status.json``.

The swap is one reference assignment: batches already running finish on the old model (the
batcher took its reference), the next batch uses the new one; no request is dropped or fails.
A version that cannot be loaded (missing, corrupt: ``model.onnx`` not matching the card's
sha256, not a model ONNX Runtime can run) is logged, the current model keeps serving, and the
status and the health body say both: what serves, which version failed, and why.

The status (:func:`vertex_edge.serving_status.write_status`, beside ``endpoint.json``) is written
when following starts (before the first model is loaded: a deploy made meanwhile waits for it),
when a new target version starts loading, and when that load succeeds or fails; it is removed
when the server stops. Deploy and ``edge.py endpoint describe`` read it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from vertex_edge.errors import EdgeError
from vertex_edge.registry import served_version
from vertex_edge.serving.model import LoadedModel
from vertex_edge.serving.state import ServingState
from vertex_edge.serving_status import remove_status, status_path, write_status

log = logging.getLogger("vertex_edge.serving")


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


def error_message(exc: BaseException) -> str:
    """What a failed load says: the typed error's message, else the exception's type and text."""
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) and message else f"{type(exc).__name__}: {exc}"


class EndpointFollower:
    """Polls ``endpoint_file`` every ``interval_s`` seconds (:meth:`run`, until cancelled) and
    reports in the serving status what this server (at ``url``) serves."""

    def __init__(
        self,
        endpoint_file: Path,
        state: ServingState,
        load: Callable[[str], LoadedModel],
        *,
        url: str,
        interval_s: float,
    ) -> None:
        self.endpoint_file = Path(endpoint_file)
        self.state = state
        self.load = load
        self.url = url
        self.interval_s = interval_s
        self._seen: tuple[int, int, int] | None = None

    # ------------------------------------------------------------------ the status file
    def report(self) -> None:
        """Write what is served, what is targeted and the last load error (never raises)."""
        state = self.state
        serving = state.model.registry_version if state.model is not None else None
        try:
            write_status(
                self.endpoint_file,
                url=self.url,
                serving_version=serving,
                target_version=state.target_version,
                error=state.reload_error,
            )
        except OSError as exc:
            log.warning("cannot write %s: %s", status_path(self.endpoint_file), exc)

    def clear(self) -> None:
        """Remove this server's status (on shutdown): no live server follows the endpoint any more."""
        remove_status(self.endpoint_file)

    def starting(self, target_version: str | None) -> None:
        """Before the first model loads: following has started, nothing serves yet."""
        self.state.target_version = target_version
        self.report()

    def start_failed(self, message: str) -> None:
        self.state.reload_error = message
        self.report()

    # ------------------------------------------------------------------ following
    async def run(self, *, follow: bool = True) -> None:
        """Follow the endpoint until cancelled (the first check happens at once: a deployment
        may have happened while the first model was loading). Not ``follow``ing: only say so
        (target None: deploy reports that a restart is needed) until cancelled."""
        current = self.state.model
        served = current.registry_version if current is not None else None
        self.state.target_version = served if follow else None
        self.report()
        try:
            if not follow:
                await asyncio.Event().wait()
            while True:
                await self.check()
                await asyncio.sleep(self.interval_s)
        finally:
            self.clear()

    async def check(self) -> None:
        """One look at the endpoint file; loads and swaps in a new target version."""
        signature = _signature(self.endpoint_file)
        if signature is None or signature == self._seen:
            return
        self._seen = signature
        try:
            version, folder = served_version(self.endpoint_file)
        except EdgeError as exc:
            log.warning("cannot read %s: %s", self.endpoint_file, exc.message)
            return
        state = self.state
        current = state.model
        if current is not None and current.registry_version == version:
            if state.target_version != version or state.reload_error:  # set back to what serves
                state.target_version, state.reload_error = version, None
                self.report()
            return
        state.target_version, state.reload_error = version, None
        self.report()
        log.info("endpoint now serves version %s: loading %s", version, folder)
        try:
            model = await asyncio.get_running_loop().run_in_executor(None, self.load, str(folder))
        except Exception as exc:  # noqa: BLE001 - keep serving the current model, and say so
            state.reload_error = error_message(exc)
            log.error(
                "cannot load version %s, still serving version %s: %s",
                version,
                current.registry_version if current else None,
                state.reload_error,
                extra={"fields": {"target_version": version, "error": state.reload_error}},
            )
        else:
            state.model = model
            log.info(
                "now serving version %s (model %s), was %s",
                version,
                model.version,
                current.registry_version if current else None,
                extra={"fields": {"model_version": model.version, "registry_version": version}},
            )
        self.report()
