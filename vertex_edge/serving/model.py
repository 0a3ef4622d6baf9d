"""Load the served model: ``model.onnx`` + ``model_card.json`` from a folder or ``gs://`` URI.

The ONNX Runtime session, input name, label names (from the model card, never hard-coded) and
version travel together in one immutable :class:`LoadedModel`, so a hot swap replaces them all
at once and a batch always reports the model that computed it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vertex_edge.errors import CloudError, ConfigError, DataError

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
CARD_FILE = "model_card.json"
METADATA_FILE = "metadata.json"  # written by the local registry; optional
#: the files the server needs from a model folder (model.keras is never downloaded)
SERVED_FILES = (MODEL_FILE, CARD_FILE, METADATA_FILE)

StorageClientFactory = Callable[[], Any]


@dataclass(frozen=True)
class LoadedModel:
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    labels: tuple[str, ...]
    version: str
    source: str
    card: dict[str, Any] = field(repr=False)
    registry_version: str | None = None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 [N, 28, 28] -> float32 [N, classes] probabilities."""
        return self.session.run(None, {self.input_name: batch})[0]

    def warm_up(self, sizes: Sequence[int]) -> None:
        """Run the model once per batch size so the first requests pay no allocation cost."""
        for n in sizes:
            out = self.predict(np.zeros((n, 28, 28), dtype=np.float32))
            if out.shape != (n, len(self.labels)):
                raise DataError(
                    f"{self.source}: the model returned shape {out.shape} for {n} images; "
                    f"expected ({n}, {len(self.labels)}) (one probability per label in the model card)"
                )
            if not np.isfinite(out).all():
                raise DataError(f"{self.source}: the model returned non-finite values on a blank image")


def load_model(
    uri: str,
    *,
    threads: int = 0,
    cache_dir: str | None = None,
    storage_client_factory: StorageClientFactory | None = None,
) -> LoadedModel:
    """Load the model at ``uri`` (a folder, ``file://`` URL or ``gs://bucket/path``)."""
    if uri.startswith("gs://"):
        factory = storage_client_factory or default_storage_client
        dest = Path(tempfile.mkdtemp(prefix="edge-model-", dir=cache_dir))
        download_gcs(uri, dest, factory())
        return load_model_dir(dest, threads=threads, source=uri)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        raise ConfigError(f"AIP_STORAGE_URI {uri!r}: expected a local folder or gs://bucket/path")
    return load_model_dir(Path(uri), threads=threads)


def load_model_dir(folder: Path, *, threads: int = 0, source: str | None = None) -> LoadedModel:
    """Read the card, check ``model.onnx`` against it and open an ONNX Runtime session."""
    import onnxruntime as ort

    source = source or str(folder)
    if not folder.is_dir():
        raise DataError(f"model folder {folder} does not exist", hint="point AIP_STORAGE_URI at a trained model folder")
    card = _read_card(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise DataError(f"{source}: {MODEL_FILE} is missing")
    expected = (card.get("artifacts") or {}).get(MODEL_FILE, {}).get("sha256")
    if expected:
        actual = _sha256(model_path)
        if actual != expected:
            raise DataError(
                f"{source}: {MODEL_FILE} has sha256 {actual[:12]}..., the model card says {str(expected)[:12]}...; "
                "the files do not belong together"
            )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # idle ONNX Runtime threads must not spin: they would take the CPU the event loop needs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise DataError(f"{source}: ONNX Runtime cannot load {MODEL_FILE}: {exc}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise DataError(f"{source}: the model has {len(inputs)} inputs; expected one float32 [N, 28, 28] input")
    shape = list(inputs[0].shape)
    if len(shape) != 3 or [d for d in shape[1:] if isinstance(d, int)] not in ([28, 28], []):
        raise DataError(f"{source}: the model input has shape {shape}; expected [N, 28, 28]")
    registry_version = None
    metadata_path = folder / METADATA_FILE
    if metadata_path.is_file():
        try:
            registry_version = str(json.loads(metadata_path.read_text(encoding="utf-8")).get("version") or "") or None
        except (OSError, ValueError, AttributeError):
            registry_version = None
    return LoadedModel(
        session=session,
        input_name=inputs[0].name,
        labels=tuple(card["labels"]),
        version=str(card["version"]),
        source=source,
        card=card,
        registry_version=registry_version,
    )


def default_threads() -> int:
    """ONNX Runtime intra-op threads: half the CPUs (the other half parses requests), 1..4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing: the server takes label names and the version from it") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise DataError(f"{path}: expected a JSON object")
    labels = card.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        raise DataError(f"{path}: 'labels' must be a list of class names (index = class id), got {labels!r}")
    if not isinstance(card.get("version"), str) or not card["version"]:
        raise DataError(f"{path}: 'version' must be a non-empty string")
    return card


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    rest = uri[len("gs://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(f"{uri!r} is not a gs://bucket/path URI")
    return bucket, prefix.strip("/")


def download_gcs(uri: str, dest: Path, client: Any) -> list[str]:
    """Download the served files under ``uri`` into ``dest``; return their names.

    ``client`` is a ``google.cloud.storage.Client`` (also one pointed at an emulator).
    """
    bucket_name, prefix = split_gcs_uri(uri)
    bucket = client.bucket(bucket_name)
    fetched = []
    try:
        for name in SERVED_FILES:
            blob = bucket.blob(f"{prefix}/{name}" if prefix else name)
            if not blob.exists():
                if name == METADATA_FILE:
                    continue
                raise DataError(f"{uri}/{name} does not exist", hint="upload the model folder to AIP_STORAGE_URI")
            blob.download_to_filename(str(dest / name))
            fetched.append(name)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - google-cloud-storage raises many exception types
        raise CloudError(f"cannot download the model from {uri}: {type(exc).__name__}: {exc}") from None
    log.info("downloaded %s from %s", ", ".join(fetched), uri)
    return fetched


def default_storage_client() -> Any:
    """A google-cloud-storage client; anonymous when ``STORAGE_EMULATOR_HOST`` points at an emulator."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "local"
        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client()
