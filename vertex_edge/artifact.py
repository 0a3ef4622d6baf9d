"""The trained model folder, typed: the ONE artifact every step after training reads.

A model folder holds ``model.onnx`` (what is served), ``model.keras`` (what training resumes
from), ``reference_profile.npz`` (the held-out reference that ``edge.py monitor`` compares
captured predictions with; :mod:`vertex_edge.monitoring.profile`) and ``model_card.json``
(:class:`ModelCard`: the labels, the input and output contract, the figures, the lineage and the
sha256 of every file). :class:`ModelArtifact` writes, reads and verifies it;
evaluate, deploy, the registry, the prediction server and the web app use nothing else, so a
field is spelled once, here.

This module is light on purpose (pydantic and the standard library): the prediction server's
image imports it without the training stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vertex_edge.errors import DataError
from vertex_edge.fsutil import atomic_write_json, file_digest
from vertex_edge.gitinfo import GitInfo

ONNX_FILE = "model.onnx"
KERAS_FILE = "model.keras"
CARD_FILE = "model_card.json"
PROFILE_FILE = "reference_profile.npz"
#: files a model folder may hold besides the card, in the order they are listed (the registry and
#: deploy copy each one present; a model trained without held-out images has no profile)
MODEL_FILES = (ONNX_FILE, KERAS_FILE, PROFILE_FILE)
#: what serving a model needs (``model.keras`` is never downloaded to a server)
SERVED_FILES = (ONNX_FILE, CARD_FILE)


class _Part(BaseModel):
    # unknown keys are kept: a card written by a newer version still round-trips
    model_config = ConfigDict(extra="allow", frozen=True)


class FileDigest(_Part):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class InputSpec(_Part):
    name: str
    shape: list[int | None]
    dtype: str = "float32"
    range: list[float] = Field(default_factory=lambda: [0.0, 255.0])


class OutputSpec(_Part):
    shape: list[int | None]
    kind: str = "softmax probabilities"
    name: str | None = None  # the ONNX output's name (None: output 0, the probabilities)
    columns: list[str] | None = None  # what each column holds, where they are not classes


class MonitorSpec(_Part):
    """What the export added for monitoring: the extra ONNX outputs (after the probabilities,
    which are unchanged), the out-of-distribution flag's calibration and the reference profile."""

    outputs: list[OutputSpec]
    profile: str = PROFILE_FILE
    ood_threshold: float
    ood_fpr: float = Field(gt=0, lt=1, description="the flag's false-positive rate on held-out images")
    heldout_images: int = Field(ge=0, description="validation images the profile was made from (never trained on)")
    heldout_accuracy: float = Field(ge=0, le=1)
    seconds: float = Field(default=0.0, ge=0, description="time taken to make it (not part of train_seconds)")


class TrainMetrics(_Part):
    """The training run's figures (``metrics/train.json`` holds the same)."""

    test_accuracy: float = Field(ge=0, le=1)
    test_loss: float | None = None
    val_accuracy: float = 0.0
    epochs_run: int = Field(default=0, ge=0)
    best_epoch: int = Field(default=0, ge=0)
    train_seconds: float = Field(default=0.0, ge=0)
    train_images: int = Field(default=0, ge=0)


class ModelCard(_Part):
    """``model_card.json``: what the model is, how it was made, and the sha256 of its files."""

    name: str
    version: str = Field(min_length=1, description="<UTC time>-<first 8 hex digits of model.onnx's sha256>")
    created: str
    labels: list[str] = Field(min_length=2, description="class names; index = class id")
    input: InputSpec
    output: OutputSpec
    params: dict[str, Any] = Field(default_factory=dict, description="params.yaml 'train' as trained")
    data_version: str
    git: GitInfo = GitInfo()
    metrics: TrainMetrics
    artifacts: dict[str, FileDigest]
    onnx_max_abs_diff: float | None = None
    framework: dict[str, str] = Field(default_factory=dict)
    sacred_run_id: str | None = None
    training: dict[str, Any] = Field(default_factory=dict, description="where and how it trained (Vertex AI job)")
    monitor: MonitorSpec | None = Field(default=None, description="None: a model without the monitor output")

    @field_validator("labels")
    @classmethod
    def _names(cls, labels: list[str]) -> list[str]:
        if not all(isinstance(x, str) and x for x in labels):
            raise ValueError("every label must be a non-empty class name")
        return labels

    @field_validator("artifacts")
    @classmethod
    def _has_onnx(cls, artifacts: dict[str, FileDigest]) -> dict[str, FileDigest]:
        if ONNX_FILE not in artifacts:
            raise ValueError(f"must list {ONNX_FILE} with its sha256")
        return artifacts

    @property
    def onnx_sha256(self) -> str:
        return self.artifacts[ONNX_FILE].sha256

    def with_updates(self, **fields: Any) -> ModelCard:
        """A copy with ``fields`` replaced (cards are immutable)."""
        return self.model_copy(update=fields)


def short_data_version(version: str) -> str:
    """The first 8 hex digits of a data version (``md5:0123abcd...`` or ``0123abcd...``), for tables."""
    return version.rsplit(":", 1)[-1][:8]


def digests(folder: Path, names: Iterable[str] = MODEL_FILES) -> dict[str, FileDigest]:
    """The sha256 and size of each of ``names`` present in ``folder``."""
    return {
        name: FileDigest(sha256=file_digest(folder / name, "sha256"), bytes=(folder / name).stat().st_size)
        for name in names
        if (folder / name).is_file()
    }


class ModelArtifact:
    """A model folder and its card. :meth:`read` validates the card; :meth:`verify` checks every
    file the card lists against its sha256."""

    def __init__(self, folder: Path, card: ModelCard) -> None:
        self.folder = Path(folder)
        self.card = card

    def __repr__(self) -> str:
        return f"ModelArtifact({str(self.folder)!r}, version={self.card.version!r})"

    @property
    def onnx_path(self) -> Path:
        return self.folder / ONNX_FILE

    @property
    def keras_path(self) -> Path:
        return self.folder / KERAS_FILE

    @property
    def card_path(self) -> Path:
        return self.folder / CARD_FILE

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card.labels)

    @property
    def test_accuracy(self) -> float:
        return self.card.metrics.test_accuracy

    @classmethod
    def read(cls, folder: Path, *, source: str | None = None) -> ModelArtifact:
        """The folder's card, validated; :class:`DataError` naming what is wrong otherwise."""
        folder = Path(folder)
        source = source or str(folder)
        if not folder.is_dir():
            raise DataError(f"model folder {source} does not exist", hint="train it first: 'dvc repro'")
        path = folder / CARD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(
                f"{source}/{CARD_FILE} is missing: it holds the model's labels, version and checksums",
                hint="train the model first: 'dvc repro' (or 'dvc pull')",
            ) from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{source}/{CARD_FILE} is not valid JSON: {exc}") from None
        return cls(folder, parse_card(data, f"{source}/{CARD_FILE}"))

    def verify(self, names: Iterable[str] | None = None) -> None:
        """Check that each listed file (default: every file the card lists) is there and has the
        card's sha256; :class:`DataError` otherwise (a half-copied or retrained folder)."""
        wanted = list(self.card.artifacts) if names is None else list(names)
        for name in wanted:
            expected = self.card.artifacts.get(name)
            path = self.folder / name
            if not path.is_file():
                raise DataError(
                    f"{path} is missing but the model card lists it",
                    hint="run 'dvc repro' (or 'dvc pull') to restore the model folder",
                )
            if expected is None:
                continue
            actual = file_digest(path, "sha256")
            if actual != expected.sha256:
                raise DataError(
                    f"{path} has sha256 {actual[:12]}..., the model card says {expected.sha256[:12]}...: "
                    "the files do not belong together",
                    hint="run 'dvc repro' so the model folder is consistent",
                )

    def write_card(self, card: ModelCard | None = None) -> ModelArtifact:
        """Write ``card`` (default: this one) as the folder's ``model_card.json``, atomically."""
        card = card or self.card
        atomic_write_json(self.card_path, card.model_dump(mode="json", exclude_none=False))
        return ModelArtifact(self.folder, card)


def parse_card(data: Any, source: str) -> ModelCard:
    """Validate a card's JSON; :class:`DataError` naming each bad key."""
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a JSON object")
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())) or '(card)'}: {err.get('msg', 'invalid')}"
            for err in exc.errors()[:5]
        )
        raise DataError(f"{source} is not a valid model card ({problems})") from None
