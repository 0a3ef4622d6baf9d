"""``POST <predict route>``: the pure ASGI handler that answers predictions (see
:mod:`vertex_edge.serving.app` for why FastAPI never runs it)."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vertex_edge.httpserver import TIMED_OUT, trim_heap
from vertex_edge.monitoring.capture import RequestIds
from vertex_edge.serving import jsonio
from vertex_edge.serving.asgi import Receive, Scope, Send
from vertex_edge.serving.batching import DeadlineExceeded, MicroBatcher
from vertex_edge.serving.body import Decoding, is_json, parse_instances, read_body, to_batch
from vertex_edge.serving.model import LoadedModel
from vertex_edge.serving.problems import INTERNAL_BODY, Problem, error_body, raw_headers
from vertex_edge.serving.settings import ServerSettings
from vertex_edge.serving.state import ServingState

log = logging.getLogger("vertex_edge.serving")

#: the heap is trimmed this long after the last heavy request (images, or > max_batch instances)
TRIM_AFTER_S = 1.0


class Predictor:
    """``POST <predict route>`` as a pure ASGI handler: the body is read (and refused past the
    size limit), parsed, checked, batched with other requests' images and answered; the answer
    gets a request id and is offered to the capture (a queue append, never a wait)."""

    def __init__(
        self,
        settings: ServerSettings,
        state: ServingState,
        batcher: MicroBatcher[LoadedModel],
        pools: dict[str, ThreadPoolExecutor],
    ) -> None:
        self.settings = settings
        self.state = state
        self.batcher = batcher
        self.pools = pools
        self.request_id = RequestIds()
        self._heavy = 0  # requests in progress with images or more than max_batch instances
        self._trim: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, fields: dict[str, Any]) -> None:
        headers: list[tuple[bytes, bytes]] = []
        try:
            with self.batcher.incoming() as ticket:
                batch, with_labels, deadline = await self._parse(scope, receive, fields)
                try:
                    rows, model = await self.batcher.submit(batch, ticket, deadline)
                except DeadlineExceeded:
                    raise self._late() from None
            request_id = fields["request_id"] = self.request_id()
            capture = self.state.capture
            if capture is not None:
                capture.offer(request_id, model.monitor, rows)
            status, body = 200, jsonio.dumps(predictions(rows, model, request_id, with_labels=with_labels))
        except Problem as problem:
            status, body = problem.code, error_body(problem)
            headers = raw_headers(problem.headers)
        except Exception:  # noqa: BLE001 - any other failure is a logged 500, as FastAPI would answer
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            status, body = 500, INTERNAL_BODY
        if fields.get("heavy"):
            self._heavy -= 1
            if not self._heavy and self._trim is None:
                self._trim = asyncio.get_running_loop().call_later(TRIM_AFTER_S, self._trim_heap)
        fields["status"] = status
        headers += [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _parse(
        self, scope: Scope, receive: Receive, fields: dict[str, Any]
    ) -> tuple[np.ndarray, bool, float]:
        """The batch, whether to answer every label, and the deadline (``time.monotonic()``)."""
        content_type = declared = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"content-length" and declared is None:
                declared = value.decode("latin-1")
        if content_type is not None and not is_json(content_type):
            raise Problem(
                415,
                f"the body is sent as {content_type.split(';')[0].strip()!r}; expected application/json "
                "(add the header 'Content-Type: application/json')",
            )
        settings = self.settings
        try:
            body = await read_body(receive, declared, settings.max_body_bytes)
        except Problem:
            if scope.get(TIMED_OUT):  # the connection was closed with a 408 (httpserver): log it so
                raise Problem(408, f"the body did not arrive within {settings.http.body_timeout_s:g} s") from None
            raise
        deadline = time.monotonic() + settings.request_deadline_s  # from the whole body to the answer
        if self.state.model is None:
            raise Problem(
                503, "no model is loaded yet; retry when the health route answers 200", headers={"Retry-After": "5"}
            )
        try:
            payload = jsonio.loads(body)
        except ValueError as exc:
            raise Problem(400, f'the body is not valid JSON ({exc}); expected {{"instances": [...]}}') from None
        instances, with_labels = parse_instances(payload, settings.max_instances)
        fields["instances"] = len(instances)
        # JSON true/false are not pixel values; skip looking for them when the body has none
        check_booleans = b"true" in body or b"false" in body
        images = any(isinstance(i, dict) for i in instances)
        if images or len(instances) > settings.max_batch:
            self._heavy += 1
            fields["heavy"] = True
        if images:
            return await self._decode(instances, check_booleans, deadline), with_labels, deadline
        return to_batch(instances, check_booleans), with_labels, deadline

    async def _decode(self, instances: list[object], check_booleans: bool, deadline: float) -> np.ndarray:
        """b64 images off the event loop, in the bounded pool: headers and budgets first, then the
        pixels a slice at a time (requests take turns; a late one stops with a 504)."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        pool = self.pools.get("images")
        decoding = Decoding(instances, check_booleans=check_booleans, max_image_pixels=settings.max_image_pixels)
        try:
            await loop.run_in_executor(pool, decoding.open, settings.max_request_pixels)
            for indices in decoding.slices():
                if not await loop.run_in_executor(pool, decoding.decode, indices, deadline):
                    raise self._late()
            return decoding.batch()
        finally:
            decoding.close()

    def _trim_heap(self) -> None:
        """After a burst of heavy requests: the heap's free memory back to the OS, in the pool."""
        self._trim = None
        if not self._heavy:
            asyncio.get_running_loop().run_in_executor(self.pools.get("images"), trim_heap)

    def _late(self) -> Problem:
        return Problem(
            504,
            f"the request could not be answered within {self.settings.request_deadline_s:g} s: the server is "
            "busy; retry later",
            headers={"Retry-After": str(self.settings.http.retry_after_s)},
        )


def predictions(rows: np.ndarray, model: LoadedModel, request_id: str, *, with_labels: bool = False) -> dict[str, Any]:
    """The answer's body for one request's packed rows (probabilities, then the monitor columns)."""
    labels = model.labels
    probs = rows if rows.shape[1] == len(labels) else rows[:, : len(labels)]
    ids = probs.argmax(axis=1).tolist()
    items = [
        {"label": labels[k], "class_id": k, "probabilities": row, "request_id": request_id}
        for k, row in zip(ids, probs, strict=True)
    ]
    ood = model.monitor.ood_fields(rows)
    if ood is not None:
        for item, fields in zip(items, ood, strict=True):
            item["ood"] = fields
    if with_labels:  # every class's name, from the model card (the web app asks; Vertex AI passes it on)
        names = list(labels)
        for item in items:
            item["labels"] = names
    return {"predictions": items, "model_version": model.version}
