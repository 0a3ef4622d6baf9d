"""Server settings, read once from the environment when the server starts (never at import).

Vertex AI's custom-container contract:

========================  =================================================  ============
variable                  meaning                                            default
========================  =================================================  ============
``AIP_HTTP_PORT``         port to listen on                                  ``8080``
``AIP_HEALTH_ROUTE``      GET route answering 200 once the model is ready    ``/health``
``AIP_PREDICT_ROUTE``     POST route for ``{"instances": [...]}``            ``/predict``
``AIP_STORAGE_URI``       folder or ``gs://bucket/path`` with ``model.onnx``  (required)
========================  =================================================  ============

Optional knobs (``EDGE_*``): ``EDGE_HOST`` (default ``0.0.0.0``), ``EDGE_MAX_INSTANCES``
(instances per request, 512), ``EDGE_MAX_BATCH`` (images per model call, 32; bounds the
model's working memory: images cost the same per call from 8 to 128, and 32 keeps the RSS
about 40 MB lower than 128),
``EDGE_BATCH_WAIT_MS`` (how long a batch waits for requests already being read, 1), ``EDGE_ORT_THREADS``
(ONNX Runtime intra-op threads, 0 = half the CPUs, 1..4), ``EDGE_ORT_WIDE_THREADS`` (threads for a
model call of at least ``EDGE_ORT_WIDE_MIN`` images of one request, such as a chunk of a big request,
0 = every CPU, 1..4, run on a second session of the same model; no more than ``EDGE_ORT_THREADS`` turns it off) and ``EDGE_ORT_WIDE_MIN`` (0 = a full
batch, ``EDGE_MAX_BATCH``; CPUs are those the process may use: its affinity and cgroup CPU quota), ``EDGE_MAX_BODY_BYTES`` (1.5 MiB, Vertex's
limit), ``EDGE_MODEL_CACHE`` (where a gs:// model is downloaded), ``EDGE_ENDPOINT_FILE`` (a
local registry ``endpoint.json`` to follow: a new deployment is loaded and swapped in without
a restart; with ``EDGE_FOLLOW=0`` the server only reports, in ``serving-status.json``, that it
serves one version and does not follow) and ``EDGE_RELOAD_INTERVAL_S`` (how often it is checked, 1).

Per-request budgets: ``EDGE_MAX_IMAGE_PIXELS`` (decoded pixels of one b64 image, 4096 x 4096:
a 400 naming the instance beyond), ``EDGE_MAX_REQUEST_PIXELS`` (of all the b64 images of a
request, twice that: a 413 beyond, checked from the image headers before anything is decoded)
and ``EDGE_REQUEST_DEADLINE_S`` (10: a request not answered by then gets a 504 with Retry-After
instead of holding the decoding threads or the model). Connection limits and timeouts
(``EDGE_HTTP_*``, ``EDGE_TRUSTED_PROXIES``): :mod:`vertex_edge.httpserver`.

Prediction capture (``EDGE_CAPTURE_*``, off unless ``EDGE_CAPTURE_URI`` is set) is read by
:meth:`vertex_edge.monitoring.capture.CaptureSettings.from_env` into :attr:`ServerSettings.capture`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from vertex_edge.envvars import Kind, read_env
from vertex_edge.errors import ConfigError
from vertex_edge.httpserver import HttpLimits
from vertex_edge.monitoring.capture import CaptureSettings
from vertex_edge.preprocess import MAX_IMAGE_PIXELS  # decoded pixels of one b64 image (4096 x 4096)

#: Vertex AI refuses online prediction requests over 1.5 MB; so does this server.
MAX_BODY_BYTES = 1_572_864
#: decoded pixels of all the b64 images of one request: about 0.5 s of CPU at most (see the README)
MAX_REQUEST_PIXELS = 2 * 4096 * 4096
_ROUTE_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


#: environment variable -> (setting, kind); capture and HTTP limits read their own (EDGE_CAPTURE_*, EDGE_HTTP_*)
ENV: dict[str, tuple[str, Kind]] = {
    "AIP_HTTP_PORT": ("port", int),
    "AIP_HEALTH_ROUTE": ("health_route", str),
    "AIP_PREDICT_ROUTE": ("predict_route", str),
    "EDGE_HOST": ("host", str),
    "EDGE_MAX_INSTANCES": ("max_instances", int),
    "EDGE_MAX_BATCH": ("max_batch", int),
    "EDGE_BATCH_WAIT_MS": ("batch_wait_ms", float),
    "EDGE_ORT_THREADS": ("ort_threads", int),
    "EDGE_ORT_WIDE_THREADS": ("ort_wide_threads", int),
    "EDGE_ORT_WIDE_MIN": ("ort_wide_min", int),
    "EDGE_MAX_BODY_BYTES": ("max_body_bytes", int),
    "EDGE_MODEL_CACHE": ("model_cache", str),
    "EDGE_ENDPOINT_FILE": ("endpoint_file", str),
    "EDGE_RELOAD_INTERVAL_S": ("reload_interval_s", float),
    "EDGE_FOLLOW": ("follow", bool),
    "EDGE_MAX_IMAGE_PIXELS": ("max_image_pixels", int),
    "EDGE_MAX_REQUEST_PIXELS": ("max_request_pixels", int),
    "EDGE_REQUEST_DEADLINE_S": ("request_deadline_s", float),
}


@dataclass(frozen=True)
class ServerSettings:
    storage_uri: str
    port: int = 8080
    host: str = "0.0.0.0"  # noqa: S104 - a container must listen on every interface
    health_route: str = "/health"
    predict_route: str = "/predict"
    max_instances: int = 512
    max_batch: int = 32
    batch_wait_ms: float = 1.0
    ort_threads: int = 0
    ort_wide_threads: int = 0
    ort_wide_min: int = 0
    max_body_bytes: int = MAX_BODY_BYTES
    model_cache: str | None = None
    endpoint_file: str | None = None
    follow: bool = True  # False: serve the one version, only report it beside endpoint_file (--no-follow)
    reload_interval_s: float = 1.0
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_request_pixels: int = MAX_REQUEST_PIXELS
    request_deadline_s: float = 10.0
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    http: HttpLimits = field(default_factory=HttpLimits)

    def __post_init__(self) -> None:
        problems = []
        for name in ("health_route", "predict_route"):
            route = getattr(self, name)
            if not _ROUTE_RE.match(route) or "//" in route:
                problems.append(f"{name} {route!r}: expected a path starting with '/', without spaces or braces")
        if self.health_route == self.predict_route:
            problems.append(f"health and predict routes are both {self.health_route!r}; expected two different paths")
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port}: expected 1..65535")
        if not self.storage_uri:
            problems.append("storage URI is empty: expected a folder or gs://bucket/path holding model.onnx")
        for name, low in (
            ("max_instances", 1),
            ("max_batch", 1),
            ("max_body_bytes", 1024),
            ("ort_threads", 0),
            ("ort_wide_threads", 0),
            ("ort_wide_min", 0),
            ("max_image_pixels", 1),
            ("max_request_pixels", 1),
        ):
            if getattr(self, name) < low:
                problems.append(f"{name} {getattr(self, name)}: expected at least {low}")
        if self.ort_wide_min > self.max_batch:
            problems.append(
                f"ort_wide_min {self.ort_wide_min}: expected at most max_batch ({self.max_batch}), "
                "the most images a model call gets"
            )
        if not 0 <= self.batch_wait_ms <= 1000:
            problems.append(f"batch_wait_ms {self.batch_wait_ms}: expected 0..1000")
        if not 0.1 <= self.request_deadline_s <= 3600:
            problems.append(f"request_deadline_s {self.request_deadline_s}: expected 0.1..3600 seconds")
        if not 0.05 <= self.reload_interval_s <= 3600:
            problems.append(f"reload_interval_s {self.reload_interval_s}: expected 0.05..3600")
        if problems:
            raise ConfigError("invalid prediction server settings:\n  - " + "\n  - ".join(problems))
        if self.health_route not in self.http.exempt_paths:  # health checks are never refused as busy
            exempt = (*self.http.exempt_paths, self.health_route)
            object.__setattr__(self, "http", replace(self.http, exempt_paths=exempt))

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server (``0.0.0.0`` shown as ``127.0.0.1``)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)  # noqa: S104
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> ServerSettings:
        """Build settings from ``AIP_*``/``EDGE_*`` variables; ``overrides`` win (CLI flags)."""
        values: dict[str, object] = {}
        storage = env.get("AIP_STORAGE_URI", "")
        if not storage and "storage_uri" not in overrides:
            raise ConfigError(
                "AIP_STORAGE_URI is not set: expected the folder or gs://bucket/path that holds model.onnx "
                "and model_card.json"
            )
        values["storage_uri"] = storage
        values.update(read_env(env, ENV))
        values["capture"] = CaptureSettings.from_env(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("http", HttpLimits.from_env(env))
        return cls(**values)  # type: ignore[arg-type]

