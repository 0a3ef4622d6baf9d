"""ONE tracked training run, two kinds of backend: Sacred records it the same way whether the
model trains in this process (:class:`LocalBackend`) or as a Vertex AI job
(:class:`vertex_edge.vertex.backend.VertexBackend`).

:func:`run_training` opens the Sacred experiment (tracking is connected before any training, so
an unreachable MongoDB fails at once), asks the backend for a model folder, stamps the card with
the Sacred run id, puts the folder in place atomically, writes ``metrics/train.json`` and the
per-epoch history, and records the figures and the model's sha256 in the run. Ctrl-C and SIGTERM
are recorded as INTERRUPTED.

The run and DVC are joined both ways: the run's info holds ``dvc`` (the experiment's name, its
baseline commit, whether it was queued; :mod:`vertex_edge.dvc_env`) and ``metrics/train.json``
holds ``sacred_run_id`` (so ``dvc exp show`` has the column, and a run-cache restore still names
the run that made the model). The history and the model card are attached to the run. Sacred's
heartbeat (every :data:`BEAT_INTERVAL_S`) shows a live run; one killed outright (SIGKILL) keeps
status RUNNING with a heartbeat that stops, which is how readers tell it is dead.

Sacred is imported inside :func:`new_experiment`: it pulls in GitPython and jsonpickle, which
``edge.py`` commands that never train should not pay for.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import platform
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vertex_edge.artifact import ModelArtifact, ModelCard, short_data_version
from vertex_edge.data.prepare import PreparedMeta, load_meta, load_npz
from vertex_edge.fsutil import atomic_dir, atomic_write_json, atomic_write_text
from vertex_edge.gitinfo import GitInfo, git_info
from vertex_edge.params import TrainParams
from vertex_edge.tracking.target import TrackingTarget, connect_mongo, make_observers
from vertex_edge.training.export import save_model
from vertex_edge.training.fit import train
from vertex_edge.training.progress import progress_callback, quiet_tensorflow

log = logging.getLogger(__name__)

HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
SCALARS = HISTORY_FIELDS[1:]
Echo = Callable[[str], None]
#: names of the files attached to the Sacred run (the evaluate stage adds confusion_matrix.png,
#: evaluate.json and evaluation.json: vertex_edge.evaluate)
HISTORY_ARTIFACT = "train_history.csv"
CARD_ARTIFACT = "model_card.json"
#: seconds between Sacred heartbeats (a RUNNING run whose heartbeat is much older is dead)
BEAT_INTERVAL_S = 10.0
#: Sacred's run options (its command-line flags, as ``Experiment.run`` takes them)
RUN_OPTIONS = {"--beat-interval": BEAT_INTERVAL_S}


@dataclass(frozen=True)
class TrainOutputs:
    model_dir: Path
    metrics: Path
    history: Path


class EpochSink(Protocol):
    """Where a backend reports each epoch: ``show`` False when the backend printed it already."""

    def __call__(self, epoch: int, logs: dict[str, float], seconds: float | None, *, show: bool = True) -> None: ...


@dataclass
class Trained:
    """What a backend hands back: the model folder it wrote, the run's history, facts for Sacred."""

    artifact: ModelArtifact
    history: list[dict[str, float]]
    info: dict[str, Any] = field(default_factory=dict)


class TrainingBackend(Protocol):
    kind: str  # "local", "vertex" or "vertex-local"

    def start_info(self) -> dict[str, Any]:
        """Facts known before training (recorded in the Sacred run's info at once)."""

    def train(
        self, *, params: TrainParams, meta: PreparedMeta, folder: Path, on_epoch: EpochSink, run_id: str | None
    ) -> Trained:
        """Train and write the model folder into ``folder`` (empty; renamed into place after).
        ``run_id`` is the Sacred run's id (None when tracking is off)."""


@dataclass
class LocalBackend:
    """Train in this process on the prepared arrays in ``data_dir``; ``ood_fpr`` is
    ``params.yaml`` ``monitor.ood.fpr`` (the export calibrates the model's OOD flag to it)."""

    data_dir: Path
    model_name: str
    git: GitInfo
    ood_fpr: float
    kind: str = "local"

    def start_info(self) -> dict[str, Any]:
        return {}

    def train(
        self, *, params: TrainParams, meta: PreparedMeta, folder: Path, on_epoch: EpochSink, run_id: str | None
    ) -> Trained:
        train_split = load_npz(self.data_dir / "train.npz")
        test_split = load_npz(self.data_dir / "test.npz")
        quiet_tensorflow()
        bar = progress_callback(batch_size=params.batch_size, epochs=params.epochs)

        def epoch_line(epoch: int, logs: dict[str, float], seconds: float | None, *, show: bool = True) -> None:
            if bar is not None:
                bar.clear()
            on_epoch(epoch, logs, seconds, show=show)

        result = train(
            train_split, test_split, params, num_classes=meta.num_classes, on_epoch=epoch_line,
            extra_callbacks=[bar] if bar is not None else None,
        )  # fmt: skip
        artifact = save_model(
            result, folder, meta=meta, params=params, model_name=self.model_name, git=self.git,
            sample=test_split.images[:256], ood_fpr=self.ood_fpr,
        )  # fmt: skip
        return Trained(artifact, result.history)


def history_csv(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(HISTORY_FIELDS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (round(row[k], 6) if k != "epoch" else int(row[k])) for k in HISTORY_FIELDS if k in row})
    return buf.getvalue()


def train_metrics(card: ModelCard) -> dict[str, Any]:
    """``metrics/train.json``: the training figures a person compares, and the Sacred run id."""
    m = card.metrics
    return {"epochs": m.epochs_run, "seconds": round(m.train_seconds), "data": short_data_version(card.data_version),
            "sacred_run_id": card.sacred_run_id}  # fmt: skip


def new_experiment(name: str, params: TrainParams, tracking: TrackingTarget, *, mongo_client: Any, echo: Echo) -> Any:
    """A Sacred experiment for one training run, observed as ``tracking`` says.

    Tracking is connected here, before any training: an unreachable MongoDB fails at once.
    """
    from sacred import SETTINGS, Experiment  # deferred: see the module docstring
    from sacred.utils import apply_backspaces_and_linefeeds

    if tracking.kind == "mongo" and mongo_client is None:
        mongo_client = connect_mongo(tracking)
    observers = make_observers(tracking, mongo_client=mongo_client)
    echo(f"tracking: {tracking.describe()}")
    # the run keeps what the terminal showed (Omniboard and `experiments ui` display it); progress-bar
    # redraws are folded to their last state
    SETTINGS.CAPTURE_MODE = "sys"
    ex = Experiment(name, save_git_info=False)
    ex.captured_out_filter = apply_backspaces_and_linefeeds
    logger = logging.getLogger("vertex_edge.sacred")  # Sacred's INFO lines duplicate ours
    logger.setLevel(logging.WARNING if observers else logging.ERROR)  # no "no observers" warning when offline
    ex.logger = logger
    ex.add_config(params.model_dump(mode="json"))
    ex.observers.extend(observers)
    return ex


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a killed job) is recorded like Ctrl-C: Sacred marks the run INTERRUPTED."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _epoch_sink(run: Any, params: TrainParams, echo: Echo) -> EpochSink:
    def on_epoch(epoch: int, logs: dict[str, float], seconds: float | None, *, show: bool = True) -> None:
        for key in SCALARS:
            if key in logs:
                run.log_scalar(key, logs[key], epoch)
        if show:
            shown = "  ".join(f"{k} {logs[k]:.4f}" for k in SCALARS if k in logs)
            took = f"  ({seconds:.1f}s)" if seconds is not None else ""
            echo(f"epoch {epoch}/{params.epochs}  {shown}{took}")

    return on_epoch


def run_training(
    *,
    backend: TrainingBackend,
    data_dir: Path,
    params: TrainParams,
    outputs: TrainOutputs,
    tracking: TrackingTarget,
    model_name: str,
    repo: Path,
    echo: Echo = lambda line: None,
    mongo_client: Any = None,
    dvc: dict[str, Any] | None = None,
) -> ModelArtifact:
    """Train with ``backend`` as one Sacred run; write the outputs; return the model folder.
    ``dvc`` is the DVC context recorded in the run's info (:func:`vertex_edge.dvc_env.dvc_context`)."""
    meta = load_meta(data_dir)
    ex = new_experiment(model_name, params, tracking, mongo_client=mongo_client, echo=echo)
    git = git_info(repo)
    done: list[ModelArtifact] = []

    @ex.main
    def _run_main(_run: Any) -> float:
        run_id = None if _run._id is None else str(_run._id)
        _run.info.update(
            {"data_version": meta.data_version, "git": git.model_dump(), "host": platform.node(), "pid": os.getpid(),
             "backend": backend.kind, "dvc": dvc or {}, **backend.start_info()}
        )  # fmt: skip
        with atomic_dir(outputs.model_dir) as folder:
            trained = backend.train(
                params=params, meta=meta, folder=folder, on_epoch=_epoch_sink(_run, params, echo), run_id=run_id
            )
            card = trained.artifact.card.with_updates(sacred_run_id=run_id)
            ModelArtifact(folder, card).write_card()
        artifact = ModelArtifact(outputs.model_dir, card)
        metrics = card.metrics
        echo(
            f"test accuracy {metrics.test_accuracy:.4f}, loss {metrics.test_loss:.4f} "
            f"({metrics.epochs_run} epochs, best {metrics.best_epoch}, {metrics.train_seconds:.0f}s on {backend.kind})"
        )
        if card.monitor is not None:
            m = card.monitor
            echo(
                f"monitoring: {m.profile} from {m.heldout_images} held-out images (accuracy {m.heldout_accuracy:.4f}), "
                f"OOD flag at a {100 * m.ood_fpr:g} % false-positive rate ({m.seconds:.0f}s)"
            )
        atomic_write_json(outputs.metrics, train_metrics(card))
        atomic_write_text(outputs.history, history_csv(trained.history))
        _run.add_artifact(str(outputs.history), name=HISTORY_ARTIFACT, content_type="text/csv")
        _run.add_artifact(str(artifact.card_path), name=CARD_ARTIFACT, content_type="application/json")
        _run.info.update(trained.info)
        _run.info["test_metrics"] = {"accuracy": metrics.test_accuracy, "loss": metrics.test_loss}
        _run.info["model"] = {
            "path": str(artifact.onnx_path), "sha256": card.onnx_sha256, "version": card.version,
            "epochs_run": metrics.epochs_run,
        }  # fmt: skip
        _run.log_scalar("test_accuracy", metrics.test_accuracy)
        done.append(artifact)
        return metrics.test_accuracy

    with sigterm_as_interrupt():
        try:
            run = ex.run(options=RUN_OPTIONS)
        except KeyboardInterrupt:
            echo("training interrupted: the run is recorded as INTERRUPTED")
            raise
    if run._id is not None:
        echo(f"experiment id: {run._id} ({tracking.describe()})")
    return done[0]
