"""The web app's settings: read from the environment (12-factor) once, validated at start-up.

Every setting has one environment variable; the names the rest of the project already uses
(``EDGE_GCP_PROJECT``, ``EDGE_GCP_REGION``, ``EDGE_ENDPOINT_ID``) are shared, the rest start
with ``EDGE_WEBAPP_``. A bad value stops the app before it serves anything, with a
:class:`~vertex_edge.errors.ConfigError` naming each variable, what it held and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vertex_edge.errors import ConfigError
from vertex_edge.httpserver import HttpLimits
from vertex_edge.preprocess import MAX_IMAGE_PIXELS

HEALTH_PATH = "/healthz"  # never refused as busy: the kubelet's probes must get through

#: The local prediction server that ``python edge.py serve`` starts (Vertex custom-container contract).
DEFAULT_ENDPOINT_URL = "http://127.0.0.1:8080/predict"

#: Pixels an image may decode to by default: a 4K screenshot (3840x2160) fits; the memory sizing
#: behind it is in the chart (helm/webapp/values.yaml, resources). A large JPEG is decoded at a
#: reduced size, so a 12-megapixel phone photo counts as 3.
DEFAULT_IMAGE_PIXELS = 8_388_608  # 8 MiP = 4096 x 2048

_ENDPOINT_ID_RE = re.compile(r"^(\d{1,30}|projects/[^/\s]+/locations/[a-z0-9-]+/endpoints/\d{1,30})$")

#: field name -> environment variable
ENV_VARS: dict[str, str] = {
    "backend": "EDGE_WEBAPP_BACKEND",
    "endpoint_url": "EDGE_WEBAPP_ENDPOINT_URL",
    "project": "EDGE_GCP_PROJECT",
    "region": "EDGE_GCP_REGION",
    "endpoint_id": "EDGE_ENDPOINT_ID",
    "timeout_s": "EDGE_WEBAPP_TIMEOUT_S",
    "max_upload_mb": "EDGE_WEBAPP_MAX_UPLOAD_MB",
    "max_image_pixels": "EDGE_WEBAPP_MAX_IMAGE_PIXELS",
    "decode_workers": "EDGE_WEBAPP_DECODE_WORKERS",
    "max_pending": "EDGE_WEBAPP_MAX_PENDING",
    "deadline_s": "EDGE_WEBAPP_DEADLINE_S",
    "max_response_mb": "EDGE_WEBAPP_MAX_RESPONSE_MB",
    "feedback_uri": "EDGE_FEEDBACK_URI",
    "model_input_logged": "EDGE_WEBAPP_MODEL_INPUT_LOGGED",
    "host": "EDGE_WEBAPP_HOST",
    "port": "EDGE_WEBAPP_PORT",
    "log_level": "EDGE_WEBAPP_LOG_LEVEL",
    "log_format": "EDGE_WEBAPP_LOG_FORMAT",
}


class WebappSettings(BaseModel):
    """Everything the web app can be configured with. Build it with :meth:`from_env`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["http", "vertex"] = Field(
        default="http",
        description="'http' (a Vertex-contract prediction server at endpoint_url) or 'vertex' (Vertex AI Endpoint)",
    )
    http: HttpLimits = Field(
        default_factory=lambda: HttpLimits(exempt_paths=(HEALTH_PATH,)),
        description="connection limits and timeouts (EDGE_HTTP_*, EDGE_TRUSTED_PROXIES; vertex_edge.httpserver)",
    )
    endpoint_url: str = Field(default=DEFAULT_ENDPOINT_URL, description="the prediction server's predict URL")
    project: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", description="a GCP project id (vertex backend)"
    )
    region: str | None = Field(
        default=None, pattern=r"^[a-z]+-[a-z]+[0-9]$", description="a GCP region such as us-central1 (vertex backend)"
    )
    endpoint_id: str | None = Field(
        default=None,
        description="a Vertex AI endpoint id (digits) or projects/P/locations/R/endpoints/ID (vertex backend)",
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="seconds to wait for the endpoint")
    max_upload_mb: float = Field(default=5.0, gt=0, le=100, description="largest upload accepted, in MB (MiB)")
    max_image_pixels: int = Field(
        default=DEFAULT_IMAGE_PIXELS,
        ge=784,
        le=MAX_IMAGE_PIXELS,
        description=f"most pixels an image may decode to (a large JPEG counts at its reduced decoding size), "
        f"at most {MAX_IMAGE_PIXELS:,}",
    )
    decode_workers: int = Field(default=2, ge=1, le=16, description="images decoded at once (threads)")
    max_pending: int = Field(
        default=32, ge=1, le=1024, description="uploads in progress at once; beyond, 503 with Retry-After"
    )
    deadline_s: float = Field(
        default=25.0, gt=0, le=300, description="seconds an upload may take from its first byte to the answer"
    )
    max_response_mb: float = Field(
        default=1.0, gt=0, le=100, description="largest answer read from the prediction endpoint, in MB (MiB)"
    )
    feedback_uri: str | None = Field(
        default=None, min_length=1, description="a folder or gs://bucket/path for feedback labels (unset: no feedback)"
    )
    model_input_logged: bool = Field(
        default=False, description="whether the endpoint logs the 28x28 image it saw (the privacy line says so)"
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="interface to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="port to listen on")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL such as " + DEFAULT_ENDPOINT_URL)
        if parts.username or parts.password:
            raise ValueError("the URL must not carry credentials")
        return value

    @field_validator("feedback_uri")
    @classmethod
    def _feedback_uri(cls, value: str | None) -> str | None:
        if value is not None and "://" in value and not value.startswith(("gs://", "file://")):
            raise ValueError("expected a folder or gs://bucket/path")
        return value

    @field_validator("endpoint_id")
    @classmethod
    def _endpoint_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _ENDPOINT_ID_RE.match(value):
            raise ValueError("expected the endpoint's numeric id or projects/P/locations/R/endpoints/ID")
        return value

    @field_validator("log_level", "log_format", "backend", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _vertex_needs_ids(self) -> WebappSettings:
        if self.backend == "vertex":
            missing = [ENV_VARS[name] for name in ("project", "region", "endpoint_id") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"backend 'vertex' needs {', '.join(missing)}")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_response_bytes(self) -> int:
        return int(self.max_response_mb * 1024 * 1024)

    def describe_endpoint(self) -> str:
        """Where predictions come from, for logs and the CLI (no secrets: URLs carry none)."""
        if self.backend == "vertex":
            return f"Vertex AI endpoint {self.endpoint_id} ({self.project}, {self.region})"
        return f"prediction server {self.endpoint_url}"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> WebappSettings:
        """Read every setting from ``environ`` (default ``os.environ``); ``overrides`` (by field name,
        e.g. from command-line flags) win. Empty variables count as unset.

        Raises :class:`ConfigError` listing each bad variable, its value and the expected form.
        """
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            value = env.get(var)
            if value is not None and value.strip() != "":
                data[name] = value.strip()
        for name, value in (overrides or {}).items():
            if name not in ENV_VARS:
                raise ValueError(f"unknown web app setting {name!r}")
            if value is not None:
                data[name] = value
        data.setdefault("http", HttpLimits.from_env(env, exempt_paths=(HEALTH_PATH,)))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format_errors(exc, data)) from None


def _format_errors(exc: ValidationError, data: Mapping[str, Any]) -> str:
    lines = ["web app settings are invalid:"]
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        msg = re.sub(r"^Value error, ", "", err.get("msg", "invalid value"))
        if not loc:  # model-level rule
            lines.append(f"  - {msg}")
            continue
        name = loc[0]
        var = ENV_VARS.get(name, name)
        field = WebappSettings.model_fields.get(name)
        expected = field.description if field is not None and field.description else ""
        got = f" (got {_redact(data[name])!r})" if name in data else ""
        lines.append(f"  - {var}: {msg}{got}" + (f"; expected {expected}" if expected and expected not in msg else ""))
    return "\n".join(lines)


def _redact(value: Any) -> Any:
    """A URL's password (or user) must not reach a log or a terminal."""
    if isinstance(value, str) and "@" in value and "://" in value:
        parts = urlsplit(value)
        if parts.username or parts.password:
            host = parts.netloc.rsplit("@", 1)[-1]
            return parts._replace(netloc=f"***@{host}").geturl()
    return value
