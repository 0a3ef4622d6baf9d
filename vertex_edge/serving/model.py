"""Load the served model: ``model.onnx`` + ``model_card.json`` from a folder or ``gs://`` URI.

The ONNX Runtime session, input name, label names (from the model card, never hard-coded),
version and :class:`~vertex_edge.monitoring.layout.ModelMonitor` (which outputs to ask for, and
how to read the monitor columns) travel together in one immutable :class:`LoadedModel`, so a hot
swap replaces them all at once and a batch always reports the model that computed it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vertex_edge.artifact import ONNX_FILE, SERVED_FILES, ModelArtifact, ModelCard
from vertex_edge.errors import ConfigError, DataError
from vertex_edge.gcp.clients import storage_client
from vertex_edge.gcp.errors import google_call
from vertex_edge.monitoring.layout import ModelMonitor
from vertex_edge.registry import METADATA_FILE

log = logging.getLogger(__name__)

StorageClientFactory = Callable[[], Any]


@dataclass(frozen=True)
class LoadedModel:
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    labels: tuple[str, ...]
    version: str
    source: str
    card: ModelCard = field(repr=False)
    monitor: ModelMonitor = field(repr=False)
    registry_version: str | None = None
    #: the same model on more threads, for ``predict(..., wide=True)`` of ``wide_min`` images or more (None: off)
    wide_session: Any = field(default=None, repr=False)
    wide_min: int = 0
    threads: int = 1  # of ``session``
    onnx_path: Path | None = field(default=None, repr=False)

    def predict(self, batch: np.ndarray, *, wide: bool = False) -> np.ndarray:
        """float32 [N, 28, 28] -> float32 [N, classes + monitor columns]: the probabilities, then
        (for a model with a ``monitor`` output) the OOD score, flag and input summaries. ``wide``:
        the batch may run on the wide session (the server says so for one request's images:
        its parsing cost is shared by many images, so the event loop can spare a CPU)."""
        monitor = self.monitor
        wide = wide and self.wide_session is not None and len(batch) >= self.wide_min
        session = self.wide_session if wide else self.session
        outputs = session.run(monitor.output_names, {self.input_name: batch})
        return outputs[0] if len(outputs) == 1 else monitor.pack(outputs)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """float32 [N, 28, 28] -> float32 [N, classes]."""
        return self.predict(batch)[:, : len(self.labels)]

    def widened(self, threads: int, wide_min: int, warm_sizes: Sequence[int] = ()) -> LoadedModel:
        """This model with a wide session on ``threads`` threads (see :attr:`wide_session`), run
        once for each of ``warm_sizes`` from ``wide_min`` up; itself when it has one already or
        ``threads`` is no more than its session's."""
        if self.wide_session is not None or threads <= self.threads or self.onnx_path is None:
            return self
        wide = replace(self, wide_session=open_session(self.onnx_path, threads, source=self.source), wide_min=wide_min)
        for n in sorted({max(wide_min, 1), *(n for n in warm_sizes if n >= wide_min)}):
            wide.predict(np.zeros((n, 28, 28), dtype=np.float32), wide=True)
        return wide

    def warm_up(self, sizes: Sequence[int]) -> None:
        """Run the model once per batch size so the first requests pay no allocation cost."""
        width = len(self.labels) + len(self.monitor.columns)
        for n in sizes:
            out = self.predict(np.zeros((n, 28, 28), dtype=np.float32))
            if out.shape != (n, width):
                extra = f" + {len(self.monitor.columns)} monitor columns" if self.monitor.columns else ""
                raise DataError(
                    f"{self.source}: the model returned shape {out.shape} for {n} images; "
                    f"expected ({n}, {width}) (one probability per label in the model card{extra})"
                )
            if not np.isfinite(out).all():
                raise DataError(f"{self.source}: the model returned non-finite values on a blank image")


def load_model(
    uri: str,
    *,
    threads: int = 0,
    wide_threads: int = 0,
    wide_min: int = 0,
    cache_dir: str | None = None,
    storage_client_factory: StorageClientFactory | None = None,
) -> LoadedModel:
    """Load the model at ``uri`` (a folder, ``file://`` URL or ``gs://bucket/path``); the
    thread settings are :func:`load_model_dir`'s."""
    wide = {"wide_threads": wide_threads, "wide_min": wide_min}
    if uri.startswith("gs://"):
        factory = storage_client_factory or storage_client
        dest = Path(tempfile.mkdtemp(prefix="edge-model-", dir=cache_dir))
        download_gcs(uri, dest, factory())
        return load_model_dir(dest, threads=threads, source=uri, **wide)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        raise ConfigError(f"AIP_STORAGE_URI {uri!r}: expected a local folder or gs://bucket/path")
    return load_model_dir(Path(uri), threads=threads, **wide)


def load_model_dir(
    folder: Path, *, threads: int = 0, wide_threads: int = 0, wide_min: int = 0, source: str | None = None
) -> LoadedModel:
    """Read the card, check ``model.onnx`` against its sha256 and open an ONNX Runtime session
    on ``threads`` intra-op threads (0: :func:`default_threads`). With ``wide_threads`` above
    that, a second session on ``wide_threads`` runs ``predict(batch, wide=True)`` of ``wide_min``
    images or more."""
    source = source or str(folder)
    if not folder.is_dir():
        raise DataError(f"model folder {folder} does not exist", hint="point AIP_STORAGE_URI at a trained model folder")
    artifact = ModelArtifact.read(folder, source=source)
    artifact.verify([ONNX_FILE])
    threads = threads or default_threads()
    session = open_session(artifact.onnx_path, threads, source=source)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise DataError(f"{source}: the model has {len(inputs)} inputs; expected one float32 [N, 28, 28] input")
    shape = list(inputs[0].shape)
    if len(shape) != 3 or [d for d in shape[1:] if isinstance(d, int)] not in ([28, 28], []):
        raise DataError(f"{source}: the model input has shape {shape}; expected [N, 28, 28]")
    try:
        monitor = ModelMonitor.from_session(session, version=artifact.version, labels=artifact.labels)
    except (ValueError, KeyError, TypeError) as exc:  # a malformed layout entry in the ONNX metadata
        raise DataError(f"{source}: the model's monitor layout metadata cannot be read: {exc}") from None
    model = LoadedModel(
        session=session,
        input_name=inputs[0].name,
        labels=artifact.labels,
        version=artifact.version,
        source=source,
        card=artifact.card,
        monitor=monitor,
        registry_version=registry_version_of(folder),
        threads=threads,
        onnx_path=artifact.onnx_path,
    )
    return model.widened(wide_threads, wide_min)


def open_session(path: Path, threads: int, *, source: str) -> Any:
    """An ONNX Runtime CPU session on ``threads`` intra-op threads that never spin."""
    import onnxruntime as ort  # deferred: about 0.3 s to import, paid once when a model loads

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # idle ONNX Runtime threads must not spin: they would take the CPU the event loop needs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise DataError(f"{source}: ONNX Runtime cannot load {ONNX_FILE}: {exc}") from None


def registry_version_of(folder: Path) -> str | None:
    """The local registry's version number, when the folder is a registry version."""
    try:
        return str(json.loads((folder / METADATA_FILE).read_text(encoding="utf-8")).get("version") or "") or None
    except (OSError, ValueError, AttributeError):
        return None


def default_threads() -> int:
    """ONNX Runtime intra-op threads: half the CPUs (the other half parses requests), 1..4."""
    return max(1, min(4, available_cpus() // 2))


def default_wide_threads() -> int:
    """Threads for a model call of one request's many images: every CPU, 1..4 (such a call
    parallelises well and its parsing cost is shared by many images; batches of one-image
    requests need the other CPU for the event loop)."""
    return max(1, min(4, available_cpus()))


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container limited to 2 CPUs on a 16-CPU node sees 16 in ``os.cpu_count()``)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cgroup.read_text(encoding="ascii").split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))  # a quota of 1.5 CPUs: 2 threads
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity alone
    return max(1, cpus)


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
    for name in (*SERVED_FILES, METADATA_FILE):
        blob = bucket.blob(f"{prefix}/{name}" if prefix else name)
        if not google_call(f"cannot check {uri}/{name}", blob.exists):
            if name == METADATA_FILE:
                continue
            raise DataError(f"{uri}/{name} does not exist", hint="upload the model folder to AIP_STORAGE_URI")
        google_call(f"cannot download the model from {uri}", lambda blob=blob, name=name: blob.download_to_filename(str(dest / name)))
        fetched.append(name)
    log.info("downloaded %s from %s", ", ".join(fetched), uri)
    return fetched
