"""One interface to the deployed model, two implementations chosen by configuration.

* :class:`HttpPredictionClient` - POSTs ``{"instances": [...]}`` to a prediction server that
  follows the Vertex AI custom-container contract (``python edge.py serve`` locally).
* :class:`VertexPredictionClient` - ``aiplatform.Endpoint(...).predict(instances=[...])``; the
  endpoint object is built lazily on the first prediction, so the app starts without network.

Both send the preprocessed 28x28 array (a nested list) as the one instance, so the page can show
exactly what the model saw. Every failure raises :class:`~vertex_edge.errors.CloudError` whose
message is safe to show to a user (no URLs, project ids or stack traces); the details go to the log.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vertex_edge.errors import CloudError
from vertex_edge.gcp.errors import classify
from vertex_edge.webapp.settings import WebappSettings

log = logging.getLogger(__name__)

#: what the web app asks the prediction server for besides the probabilities: every class's name
#: (the model card's labels), so the page never needs a copy of them
REQUEST_PARAMETERS = {"labels": True}


@dataclass(frozen=True)
class OodFlag:
    """The server's out-of-distribution verdict: ``flag`` when the input is far from the training data."""

    score: float
    flag: bool


@dataclass(frozen=True)
class Prediction:
    """What the endpoint answered for one image."""

    label: str
    class_id: int
    probabilities: tuple[float, ...]
    model_version: str
    labels: tuple[str, ...] = ()  # every class's name, index = class id
    request_id: str | None = None  # the prediction server's id for this prediction (feedback quotes it)
    ood: OodFlag | None = None  # only when the model has the out-of-distribution monitor
    named: bool = True  # False when the endpoint named only the predicted class (labels made up)

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.probabilities):  # an older server: name only what it named
            names = tuple(self.label if i == self.class_id else f"class {i}" for i in range(len(self.probabilities)))
            object.__setattr__(self, "labels", names)
            object.__setattr__(self, "named", False)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.class_id]


class PredictionClient(Protocol):
    """The deployed model, wherever it runs."""

    backend: str

    async def predict(self, image: np.ndarray) -> Prediction:
        """Classify one preprocessed float32 28x28 image. Raises :class:`CloudError`."""

    async def aclose(self) -> None:
        """Release connections."""


# --------------------------------------------------------------------------- response parsing


class _Ood(BaseModel):
    model_config = ConfigDict(extra="allow")

    score: float = Field(allow_inf_nan=False)
    flag: bool


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow")

    label: str = Field(min_length=1, max_length=200)
    class_id: int = Field(ge=0)
    probabilities: list[float] = Field(min_length=2, max_length=1000)
    labels: list[str] | None = Field(default=None, max_length=1000)
    model_version: str | None = None
    request_id: str | None = Field(default=None, max_length=200)
    ood: _Ood | None = None

    @model_validator(mode="after")
    def _consistent(self) -> _Item:
        if self.class_id >= len(self.probabilities):
            raise ValueError(f"class_id {self.class_id} but only {len(self.probabilities)} probabilities")
        if self.labels is not None and len(self.labels) != len(self.probabilities):
            raise ValueError(f"{len(self.labels)} labels for {len(self.probabilities)} probabilities")
        return self


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")

    predictions: list[_Item] = Field(min_length=1)
    model_version: str | None = None


_BAD_RESPONSE = "The prediction endpoint sent an answer this app does not understand."


def parse_response(body: Any, *, source: str = "endpoint", fallback_version: str | None = None) -> Prediction:
    """The first prediction of a Vertex-contract response body. Raises :class:`CloudError`."""
    try:
        response = _Response.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(body)"
        log.warning("%s: response is not in the expected form: %s: %s", source, where, first.get("msg"))
        raise CloudError(_BAD_RESPONSE) from None
    item = response.predictions[0]
    probs = tuple(float(p) for p in item.probabilities)
    if not all(math.isfinite(p) and -1e-6 <= p <= 1 + 1e-6 for p in probs):
        log.warning("%s: response has probabilities outside 0..1: %s", source, probs)
        raise CloudError(_BAD_RESPONSE)
    probs = tuple(min(1.0, max(0.0, p)) for p in probs)
    labels = tuple(item.labels or ())
    if labels and labels[item.class_id] != item.label:
        log.warning("%s: label %r for class %d differs from %r", source, item.label, item.class_id, labels[item.class_id])
    version = item.model_version or response.model_version or fallback_version or "unknown"
    ood = OodFlag(score=item.ood.score, flag=item.ood.flag) if item.ood is not None else None
    return Prediction(
        label=item.label, class_id=item.class_id, probabilities=probs, model_version=version, labels=labels,
        request_id=item.request_id, ood=ood,
    )  # fmt: skip


def _instance(image: np.ndarray) -> list[list[float]]:
    arr = np.asarray(image, dtype=np.float32)
    if arr.shape != (28, 28):
        raise ValueError(f"expected a 28x28 image, got shape {arr.shape}")
    return arr.tolist()


# --------------------------------------------------------------------------- HTTP (local target)


class HttpPredictionClient:
    """A Vertex-contract prediction server over HTTP (keeps connections open between requests)."""

    backend = "http"

    def __init__(
        self, url: str, *, timeout: float, max_response_bytes: int = 1 << 20, transport: Any | None = None
    ) -> None:
        import httpx

        self.url = url
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), transport=transport, headers={"User-Agent": "vertex-edge-webapp"}
        )

    async def predict(self, image: np.ndarray) -> Prediction:
        import httpx

        payload = {"instances": [_instance(image)], "parameters": REQUEST_PARAMETERS}
        try:
            async with self._client.stream("POST", self.url, json=payload) as resp:
                raw = await self._read_capped(resp)
        except httpx.TimeoutException:
            log.warning("prediction server %s did not answer within %g s", self.url, self.timeout)
            raise CloudError(f"The prediction endpoint did not answer within {self.timeout:g} seconds.") from None
        except httpx.HTTPError as exc:
            log.warning("cannot reach prediction server %s: %s: %s", self.url, type(exc).__name__, exc)
            raise CloudError("The prediction endpoint cannot be reached right now.") from None
        if resp.status_code != 200:
            log.warning("prediction server %s answered HTTP %d: %s", self.url, resp.status_code, _error_detail(raw.decode("utf-8", "replace")))
            raise CloudError(f"The prediction endpoint returned an error (HTTP {resp.status_code}).")
        try:
            body = json.loads(raw)
        except ValueError:
            log.warning("prediction server %s answered with a body that is not JSON", self.url)
            raise CloudError(_BAD_RESPONSE) from None
        return parse_response(body, source=f"prediction server {self.url}")

    async def _read_capped(self, resp: Any) -> bytes:
        """The response body, read as it streams in and abandoned past ``max_response_bytes``
        (counted after any content decoding, so a compressed bomb is stopped too)."""
        limit = self.max_response_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(f"{int(declared):,} bytes declared")
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise self._too_large(f"over {limit:,} bytes received")
        return bytes(body)

    def _too_large(self, what: str) -> CloudError:
        limit_mb = self.max_response_bytes / (1024 * 1024)
        log.warning("prediction server %s: answer refused, %s (limit %d bytes)", self.url, what, self.max_response_bytes)
        return CloudError(f"The prediction endpoint sent an answer larger than the {limit_mb:g} MB limit.")

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_detail(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- Vertex AI (gcp target)

EndpointFactory = Callable[..., Any]


def _aiplatform_endpoint(*, endpoint_name: str, project: str, location: str) -> Any:
    from google.cloud import aiplatform

    return aiplatform.Endpoint(endpoint_name=endpoint_name, project=project, location=location)


class VertexPredictionClient:
    """A Vertex AI endpoint via google-cloud-aiplatform. Credentials come from the environment
    (Workload Identity on GKE, ``gcloud auth application-default login`` on a laptop)."""

    backend = "vertex"

    def __init__(
        self,
        *,
        project: str,
        region: str,
        endpoint_id: str,
        timeout: float,
        endpoint_factory: EndpointFactory | None = None,
    ) -> None:
        self.project = project
        self.region = region
        self.endpoint_id = endpoint_id
        self.timeout = timeout
        self._factory = endpoint_factory or _aiplatform_endpoint
        self._endpoint: Any = None
        self._lock = threading.Lock()

    def _get_endpoint(self) -> Any:
        with self._lock:
            if self._endpoint is None:
                self._endpoint = self._factory(
                    endpoint_name=self.endpoint_id, project=self.project, location=self.region
                )
            return self._endpoint

    async def predict(self, image: np.ndarray) -> Prediction:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self.predict_sync, image)

    def predict_sync(self, image: np.ndarray) -> Prediction:
        instance = _instance(image)
        try:
            endpoint = self._get_endpoint()
            response = endpoint.predict(instances=[instance], parameters=REQUEST_PARAMETERS, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure becomes a CloudError
            raise self._map_error(exc) from None
        body = {"predictions": list(getattr(response, "predictions", None) or [])}
        return parse_response(
            body,
            source=f"Vertex AI endpoint {self.endpoint_id} in {self.project}/{self.region}",
            fallback_version=_vertex_version(response),
        )

    def _map_error(self, exc: Exception) -> CloudError:
        where = f"Vertex AI endpoint {self.endpoint_id} in {self.project}/{self.region}"
        message, hint = _user_error(exc, self.timeout)
        log.warning("%s: %s: %s%s", where, type(exc).__name__, _error_detail(str(exc)), f" ({hint})" if hint else "")
        return CloudError(message)

    async def aclose(self) -> None:
        return None


def _vertex_version(response: Any) -> str | None:
    model = str(getattr(response, "model_resource_name", "") or "")
    version = str(getattr(response, "model_version_id", "") or "")
    model_id = model.rsplit("/", 1)[-1] if model else ""
    if model_id and version:
        return f"model {model_id} v{version}"
    deployed = str(getattr(response, "deployed_model_id", "") or "")
    return f"deployed model {deployed}" if deployed else None


#: what the page says for each kind of :class:`~vertex_edge.gcp.errors.CloudProblem`, and the
#: operator's hint for the log
_USER_MESSAGES: dict[str, tuple[str, str | None]] = {
    "credentials": (
        "The web app has no credentials to call the prediction endpoint (or they were rejected).",
        "on GKE use Workload Identity (helm value serviceAccount.gcpServiceAccount); "
        "on a laptop run 'gcloud auth application-default login'",
    ),
    "permission": (
        "The web app is not allowed to call the prediction endpoint.",
        "grant roles/aiplatform.user to the web app's service account",
    ),
    "disabled": ("The web app is not allowed to call the prediction endpoint.", "enable the Vertex AI API"),
    "not_found": (
        "The prediction endpoint was not found.",
        "check EDGE_ENDPOINT_ID, EDGE_GCP_PROJECT and EDGE_GCP_REGION",
    ),
    "precondition": ("The prediction endpoint has no model ready to answer.", "deploy a model to the endpoint"),
    "unreachable": ("The prediction endpoint cannot be reached right now.", None),
}


def _user_error(exc: Exception, timeout: float) -> tuple[str, str | None]:
    """(message for the user, hint for the log), from the one Google-error classifier."""
    problem = classify(exc)
    if problem is None:
        return "The prediction endpoint call failed.", None
    if problem.kind == "timeout":
        return f"The prediction endpoint did not answer within {timeout:g} seconds.", None
    if problem.kind in _USER_MESSAGES:
        return _USER_MESSAGES[problem.kind]
    code = getattr(exc, "code", None)
    suffix = f" (HTTP {int(code)})" if isinstance(code, int) else ""
    return f"The prediction endpoint returned an error{suffix}.", None


# --------------------------------------------------------------------------- factory


def build_client(settings: WebappSettings) -> PredictionClient:
    """The client the settings ask for (no network until the first prediction)."""
    if settings.backend == "vertex":
        assert settings.project and settings.region and settings.endpoint_id  # checked by the settings model
        return VertexPredictionClient(
            project=settings.project,
            region=settings.region,
            endpoint_id=settings.endpoint_id,
            timeout=settings.timeout_s,
        )
    return HttpPredictionClient(
        settings.endpoint_url, timeout=settings.timeout_s, max_response_bytes=settings.max_response_bytes
    )
