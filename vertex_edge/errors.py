"""Typed errors raised by the library. Only the CLI maps them to messages and exit codes."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class for every error a user can cause or fix.

    ``message`` says what was wrong and what was expected; ``hint`` (optional) says what to do.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(EdgeError):
    """Bad flags or arguments."""

    exit_code = 2


class ConfigError(EdgeError):
    """``edge.yaml`` (or ``params.yaml``) is missing, unreadable or invalid."""

    exit_code = 2


class NotProvisionedError(EdgeError):
    """Something ``edge.py setup`` should have created is missing."""

    exit_code = 2


class LockHeldError(EdgeError):
    """Another ``edge.py`` holds the state lock."""

    exit_code = 3


class PreconditionFailedError(EdgeError):
    """A state write lost a race: someone else changed the state since it was read."""

    exit_code = 3


class DataError(EdgeError):
    """Input data is missing, corrupt or not what the manifest describes."""


class ChecksumError(DataError):
    """A file's checksum matches neither accepted value."""


class DownloadError(DataError):
    """A file could not be fetched from any source."""


class TrackingError(EdgeError):
    """Experiment tracking is misconfigured or its store is unreachable."""


class QualityGateError(EdgeError):
    """A model is below the quality gate."""


class ExternalToolError(EdgeError):
    """A subprocess (dvc, git, helm, kubectl, ...) failed or is missing."""


class RegistryError(EdgeError):
    """The model registry or endpoint is missing or inconsistent."""


class CloudError(EdgeError):
    """A cloud API call failed, or the cloud cannot be reached."""
