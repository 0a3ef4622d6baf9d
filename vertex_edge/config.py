"""The one typed configuration model for ``edge.yaml``.

Load it once at the edge (the CLI) with :func:`load_config` and pass it explicitly.
Hyperparameters do not live here: they are DVC params in ``params.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vertex_edge.errors import ConfigError
from vertex_edge.fsutil import atomic_write_text
from vertex_edge.monitoring.settings import MonitoringConfig
from vertex_edge.redact import redact_url

CONFIG_FILE = "edge.yaml"
M = TypeVar("M", bound=BaseModel)
CONFIG_VERSION = 1

_NAME_RE = r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    """The model this project trains and deploys."""

    name: str = Field(
        default="fashion-mnist",
        pattern=_NAME_RE,
        description="lower-case letters, digits and '-', 2-63 characters, starting with a letter",
    )


class StorageConfig(_Strict):
    """Where the local target keeps its DVC store, experiments, registry and state."""

    root: str = Field(
        default=".edge",
        min_length=1,
        description="a folder path; relative paths are relative to the repository root",
    )


class TrackingConfig(_Strict):
    """Experiment tracking with Sacred."""

    enabled: bool = Field(default=True, description="false disables tracking (like EDGE_OFFLINE=1)")
    mongodb_url: str | None = Field(
        default=None,
        description="mongodb://host:port (no password: put a URL with credentials in EDGE_MONGODB_URL)",
    )
    mongodb_db: str = Field(default="sacred", pattern=r"^[A-Za-z0-9_-]{1,63}$")

    @field_validator("mongodb_url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("mongodb", "mongodb+srv"):
            raise ValueError("expected a URL starting with mongodb:// or mongodb+srv://")
        if parts.password:
            raise ValueError(
                "a MongoDB URL with a password must not be stored in edge.yaml; "
                "set it in the EDGE_MONGODB_URL environment variable instead"
            )
        return value


class GcpConfig(_Strict):
    """The Google Cloud project the gcp target provisions into."""

    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", description="a GCP project id")
    region: str = Field(default="us-central1", pattern=r"^[a-z]+-[a-z]+[0-9]$", description="e.g. us-central1")
    bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$",
        description="GCS bucket name; default '<project>-edge'",
    )
    dvc_prefix: str = Field(default="dvcstore", pattern=r"^[A-Za-z0-9._/-]+$")
    artifact_repository: str = Field(default="edge", pattern=_NAME_RE)
    cluster: str = Field(default="edge-cluster", pattern=_NAME_RE)
    sacred_namespace: str = Field(default="sacred", pattern=_NAME_RE)
    endpoint: str | None = Field(
        default=None, description="Vertex AI endpoint display name; default '<model>-endpoint'"
    )

    @property
    def bucket_name(self) -> str:
        return self.bucket or f"{self.project}-edge"


class TrainingJobConfig(_Strict):
    """Vertex AI CustomJob worker pool for the vertex pipeline's train stage."""

    machine_type: str = "n1-standard-8"
    accelerator_type: str | None = "NVIDIA_TESLA_T4"
    accelerator_count: int = Field(default=1, ge=0, le=16)
    replica_count: int = Field(default=1, ge=1, le=64)
    image: str | None = Field(default=None, description="training image URI; default built in Artifact Registry")


class ServingConfig(_Strict):
    """Vertex AI endpoint deployment."""

    machine_type: str = "n1-standard-2"
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=2, ge=1)
    image: str | None = Field(default=None, description="prediction image URI; default built in Artifact Registry")

    @model_validator(mode="after")
    def _replicas(self) -> ServingConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class VertexConfig(_Strict):
    training: TrainingJobConfig = TrainingJobConfig()
    serving: ServingConfig = ServingConfig()


class EdgeConfig(_Strict):
    """Everything ``edge.yaml`` may hold. Unknown keys are refused."""

    version: Literal[1] = CONFIG_VERSION
    target: Literal["local", "gcp"] = "local"
    model: ModelConfig = ModelConfig()
    storage: StorageConfig = StorageConfig()
    tracking: TrackingConfig = TrackingConfig()
    gcp: GcpConfig | None = None
    vertex: VertexConfig = VertexConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @model_validator(mode="after")
    def _target_needs_gcp(self) -> EdgeConfig:
        if self.target == "gcp" and self.gcp is None:
            raise ValueError("target 'gcp' needs a 'gcp' section with at least 'project' (and 'region')")
        return self

    def require_gcp(self, what: str = "training on Vertex AI") -> GcpConfig:
        """The ``gcp`` section, or a :class:`ConfigError` saying how to get one."""
        if self.gcp is None:
            raise ConfigError(
                f"{what} needs a 'gcp' section in edge.yaml (project, region)",
                hint="run 'python edge.py setup --target gcp --project <id>', or train here with "
                "'--backend vertex-local' (EDGE_TRAIN_BACKEND=vertex-local)",
            )
        return self.gcp

    def storage_root(self, repo_root: Path) -> Path:
        root = Path(self.storage.root).expanduser()
        return root if root.is_absolute() else (repo_root / root)

    def to_yaml_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        if self.target == "local" and self.vertex == VertexConfig():
            data.pop("vertex")  # cloud-only defaults are noise in a local config
        if self.monitoring == MonitoringConfig():
            data.pop("monitoring")  # the defaults (capture every prediction) need no section
        return data


def _expected_form(loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    """Describe the expected form of the field at ``loc`` from the model's own schema."""
    model: Any = root
    field = None
    for part in loc:
        if not isinstance(part, str):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return ""
        field = fields[part]
        ann = field.annotation
        # unwrap Optional[Model]
        args = getattr(ann, "__args__", ()) or ()
        nested = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = nested[0] if nested else None
    if field is None:
        return ""
    if field.description:
        return field.description
    ann = field.annotation
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "a mapping with keys: " + ", ".join(ann.model_fields)
    name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
    for meta in field.metadata:
        pattern = getattr(meta, "pattern", None)
        if pattern:
            return f"{name} matching {pattern}"
    return name


def format_validation_error(exc: ValidationError, source: str, root: type[BaseModel] | None = None) -> str:
    """One line per problem: the key, what was wrong, and the expected form."""
    root = root or EdgeConfig
    lines = [f"{source} is invalid:"]
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        key = ".".join(str(p) for p in loc) or "(top level)"
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            parent: Any = root
            for part in loc[:-1]:
                sub = parent.model_fields.get(str(part)) if hasattr(parent, "model_fields") else None
                ann = sub.annotation if sub else None
                args = getattr(ann, "__args__", ()) or ()
                nested = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
                parent = nested[0] if nested else None
            allowed = ", ".join(parent.model_fields) if parent is not None else "?"
            lines.append(f"  - {key}: unknown key (expected one of: {allowed})")
            continue
        if kind == "missing":
            expected = _expected_form(loc, root)
            lines.append(f"  - {key}: missing required key" + (f" (expected {expected})" if expected else ""))
            continue
        msg = err.get("msg", "invalid value")
        msg = re.sub(r"^Value error, ", "", msg)
        expected = _expected_form(loc, root)
        got = err.get("input")
        if isinstance(got, str) and "://" in got:
            got = redact_url(got)  # never echo a password back
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(
            f"  - {key}: {msg}{got_s}" + (f"; expected {expected}" if expected and expected not in msg else "")
        )
    return "\n".join(lines)


def parse_config(data: Any, source: str = CONFIG_FILE) -> EdgeConfig:
    return validate_model(EdgeConfig, data, source)


def validate_model(model: type[M], data: Any, source: str) -> M:
    """Validate ``data`` (parsed YAML) as ``model``; :class:`ConfigError` names every bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a YAML mapping of keys to values, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, model)) from None


def load_yaml_model(path: Path, model: type[M], *, what: str = "", missing_hint: str | None = None) -> M:
    """Read a YAML file and validate it as ``model`` (edge.yaml, params.yaml, dataset manifests)."""
    import yaml

    label = f"{what} {path}".strip()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label} not found", hint=missing_hint) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {label}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{label} is not valid YAML{where}: {problem}") from None
    return validate_model(model, data, f"{what} {Path(path).name}".strip())


def load_config(path: Path) -> EdgeConfig:
    """Read and validate ``edge.yaml``. Raises :class:`ConfigError` naming every bad key."""
    return load_yaml_model(path, EdgeConfig, missing_hint="run 'python edge.py setup' to create it")


def dump_config(config: EdgeConfig) -> str:
    import yaml

    header = (
        "# vertex-edge configuration, validated by vertex_edge.config.EdgeConfig.\n"
        "# Secrets never go here: a MongoDB URL with a password belongs in EDGE_MONGODB_URL.\n"
    )
    return header + yaml.safe_dump(config.to_yaml_dict(), sort_keys=False)


def write_config(config: EdgeConfig, path: Path) -> None:
    atomic_write_text(path, dump_config(config))
