"""THE trainer entrypoint, run inside the training container (and by ``vertex-local``)::

    python -m vertex_edge.vertex.task --data-uri gs://BUCKET/vertex/staging/prepared/DIGEST \\
        --params-json '{"epochs": 14, ...}' --model-name fashion-mnist --data-version MD5 --ood-fpr 0.02 \\
        --report-dir gs://BUCKET/vertex/jobs/NAME/report [--git-commit SHA] [--git-dirty]

It honours what Vertex AI gives a custom job (:mod:`vertex_edge.vertex.contract`):

* ``AIP_MODEL_DIR`` - the exported model folder (``model.keras``, ``model.onnx``,
  ``reference_profile.npz``, ``model_card.json``, exactly what the local ``train`` stage writes)
  goes there;
* ``AIP_CHECKPOINT_DIR`` - a checkpoint after every epoch; on start the latest one is resumed
  (Vertex AI may restart VMs);
* ``AIP_TENSORBOARD_LOG_DIR`` - per-epoch TensorBoard scalars;
* ``TF_CONFIG``/``CLUSTER_SPEC`` - with several replicas, ``tf.distribute.MultiWorkerMirroredStrategy``;
  only the chief writes outputs. Several GPUs on one replica use ``MirroredStrategy``.

Inputs (``train.npz``, ``test.npz``, ``meta.json``) and outputs may be ``gs://`` URIs (read and
written with the GCS client), ``/gcs/`` FUSE paths or local folders. The report folder gets
``train.json`` (metrics), ``history.csv`` and, last, ``run.json`` (the summary the submitting side
reads). Exit codes: 0 done, 1 failed, 2 bad arguments or environment, 130 interrupted.

TensorFlow and Keras are imported inside the functions that use them: their import takes seconds,
and ``--help`` or a bad argument should not wait for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vertex_edge.artifact import ModelArtifact
from vertex_edge.data.prepare import PreparedMeta, load_meta, load_npz
from vertex_edge.errors import ConfigError, EdgeError, UsageError
from vertex_edge.fsutil import file_digest
from vertex_edge.gcp.files import Files, is_gcs, join
from vertex_edge.gitinfo import GitInfo
from vertex_edge.params import TrainParams
from vertex_edge.training.export import save_model
from vertex_edge.training.fit import STEPS_PER_EXECUTION, train
from vertex_edge.training.network import float32_copy
from vertex_edge.training.run import history_csv
from vertex_edge.vertex.checkpoint import (
    CheckpointStore,
    checkpoint_callback,
    fingerprint,
    optimizer_state,
    restore_optimizer_callback,
    scalars_callback,
)
from vertex_edge.vertex.contract import Cluster, OutputDirs, cluster_from_env
from vertex_edge.vertex.job import DATA_FILES

log = logging.getLogger("vertex_edge.vertex.task")

RUN_SUMMARY = "run.json"
STRATEGY_NAMES = {
    "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",
    "_DefaultDistributionStrategy": "default",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vertex_edge.vertex.task", description=__doc__.splitlines()[0])
    p.add_argument("--data-uri", default="", help="folder or gs:// prefix holding train.npz, test.npz, meta.json")
    p.add_argument(
        "--data-file", action="append", default=[], metavar="NAME=URI",
        help="where one input file is (e.g. a DVC remote URL); overrides --data-uri for that file",
    )  # fmt: skip
    p.add_argument("--params-json", required=True, help="the 'train' params (params.yaml) as JSON")
    p.add_argument("--model-name", default="fashion-mnist")
    p.add_argument("--data-version", default="", help="the data version (for the logs; the card uses meta.json)")
    p.add_argument(
        "--ood-fpr", type=float, required=True,
        help="params.yaml monitor.ood.fpr: the false-positive rate the model's out-of-distribution flag is calibrated to",
    )  # fmt: skip
    p.add_argument("--git-commit", default=None)
    p.add_argument("--git-dirty", action="store_true")
    p.add_argument("--model-dir", default=None, help="default: $AIP_MODEL_DIR")
    p.add_argument("--checkpoint-dir", default=None, help="default: $AIP_CHECKPOINT_DIR (none: no checkpoints)")
    p.add_argument("--tensorboard-dir", default=None, help="default: $AIP_TENSORBOARD_LOG_DIR")
    p.add_argument("--report-dir", default=None, help="default: <model dir>/../report")
    return p


def parse_params(text: str) -> Any:
    try:
        return TrainParams.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"--params-json is invalid: {problems}") from None


def data_locations(data_uri: str, overrides: Sequence[str]) -> dict[str, str]:
    """URI of each input file: ``--data-file NAME=URI`` entries, else ``<data-uri>/NAME``."""
    explicit: dict[str, str] = {}
    for item in overrides:
        name, sep, uri = item.partition("=")
        if not sep or name not in DATA_FILES or not uri:
            raise UsageError(f"--data-file {item!r}: expected NAME=URI with NAME one of {', '.join(DATA_FILES)}")
        explicit[name] = uri
    out = {}
    for name in DATA_FILES:
        if name in explicit:
            out[name] = explicit[name]
        elif data_uri:
            out[name] = join(data_uri, name)
        else:
            raise UsageError(f"no location for {name}: pass --data-uri (a folder) or --data-file {name}=URI")
    return out


def fetch_data(files: Files, locations: Mapping[str, str], dest: Path) -> dict[str, str]:
    """Copy the inputs into ``dest``; return their MD5 digests (the checkpoint fingerprint)."""
    digests = {}
    for name, uri in locations.items():
        files.download(uri, dest / name)
        digests[name] = file_digest(dest / name)
    return digests


def configure_devices() -> list[str]:
    """Let TensorFlow grow GPU memory as needed; return the GPU names (empty on CPU)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):  # already initialised
            pass
    return [g.name for g in gpus]


def make_strategy(cluster: Cluster, num_gpus: int) -> Any:
    """MultiWorkerMirroredStrategy across replicas, MirroredStrategy across local GPUs, else the
    default strategy. Must run before any other TensorFlow op."""
    import tensorflow as tf

    if cluster.multi_worker:
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster.spec), task_type=cluster.task_type, task_id=cluster.task_index, rpc_layer="grpc"
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        _nested_reduce(strategy)
        return strategy
    if num_gpus > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _nested_reduce(strategy: Any) -> None:
    """Keras 3's TensorFlow trainer calls ``strategy.reduce`` on a whole (x, y) batch and with
    ``axis=0`` on scalar metrics, which MultiWorkerMirroredStrategy refuses
    (https://github.com/keras-team/keras/issues/20585). Reduce each value of the structure, and
    scalars without an axis."""
    import tensorflow as tf

    original = strategy.reduce

    def rank(value: Any) -> int | None:
        parts = getattr(value, "values", None)
        first = parts[0] if parts else value
        return getattr(getattr(first, "shape", None), "rank", None)

    def reduce(reduce_op: Any, value: Any, axis: int | None = None) -> Any:
        def one(v: Any) -> Any:
            return original(reduce_op, v, axis=None if rank(v) == 0 else axis)

        return tf.nest.map_structure(one, value)

    strategy.reduce = reduce


def _barrier(strategy: Any) -> None:
    """All replicas wait here (one all-reduce) so none exits while the chief still exports."""
    import tensorflow as tf

    @tf.function
    def sync() -> Any:
        return strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)

    sync()


def _tensorboard(files: Files, uri: str, workdir: Path) -> tuple[Path, Any]:
    """A local log folder and the function that mirrors it to ``uri`` after each epoch."""
    if not is_gcs(uri):
        return Path(uri), None
    local = workdir / "tensorboard"

    def sync() -> None:
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            files.upload(path, join(uri, str(path.relative_to(local))))

    return local, sync


def run_task(args: argparse.Namespace, env: Mapping[str, str], *, files: Files | None = None) -> dict[str, Any]:
    """Train once (resuming from a checkpoint when there is one); return the run summary."""
    dirs = OutputDirs.from_env(
        env, model=args.model_dir, checkpoints=args.checkpoint_dir, tensorboard=args.tensorboard_dir, report=args.report_dir
    )
    cluster = cluster_from_env(env)
    params = parse_params(args.params_json)
    locations = data_locations(args.data_uri, args.data_file)
    files = files or Files()
    workdir = Path(tempfile.mkdtemp(prefix="edge-task-"))
    try:
        return _run(args, dirs, cluster, params, locations, files, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    args: argparse.Namespace,
    dirs: OutputDirs,
    cluster: Cluster,
    params: Any,
    locations: dict[str, str],
    files: Files,
    workdir: Path,
) -> dict[str, Any]:
    started = time.monotonic()
    gpus = configure_devices()
    strategy = make_strategy(cluster, len(gpus))
    strategy_name = STRATEGY_NAMES.get(type(strategy).__name__, type(strategy).__name__)
    log.info(
        "trainer: replica %s of %d (%s), %s, strategy %s",
        cluster.role, cluster.num_workers, "chief" if cluster.is_chief else "worker",
        f"{len(gpus)} GPU(s)" if gpus else "CPU only", strategy_name,
    )  # fmt: skip
    log.info("outputs: model %s, checkpoints %s, logs %s", dirs.model, dirs.checkpoints or "-", dirs.tensorboard or "-")

    data_dir = workdir / "data"
    digests = fetch_data(files, locations, data_dir)
    meta = load_meta(data_dir)
    train_split, test_split = load_npz(data_dir / "train.npz"), load_npz(data_dir / "test.npz")
    log.info("data: %d train, %d test images (data version %s)", len(train_split.labels), len(test_split.labels),
             meta.data_version[:8])  # fmt: skip
    params_json = json.dumps(params.model_dump(mode="json"), sort_keys=True)
    store = (
        CheckpointStore(files, dirs.checkpoints, fingerprint(params_json, digests), workdir / "checkpoints")
        if dirs.checkpoints
        else None
    )
    resumed = store.latest() if store is not None else None

    import keras  # deferred: TensorFlow's import takes seconds (see the module docstring)

    import vertex_edge.training.layers  # noqa: F401 - deferred (imports Keras): registers the custom layers for load_model

    callbacks: list[Any] = []
    initial_epoch, prior = 0, []
    with strategy.scope():
        model = None
        if resumed is not None:
            model = keras.models.load_model(resumed.model_file)
            initial_epoch = min(resumed.epoch, params.epochs)
            prior = [row for row in resumed.history if int(row.get("epoch", 0)) <= initial_epoch]
            callbacks.append(restore_optimizer_callback(optimizer_state(model)))
            log.info("resuming from the checkpoint of epoch %d in %s", resumed.epoch, dirs.checkpoints)
        if store is not None:
            callbacks.append(checkpoint_callback(store, prior, chief=cluster.is_chief))
        if cluster.is_chief and dirs.tensorboard:
            local_tb, sync = _tensorboard(files, dirs.tensorboard, workdir)
            callbacks.append(scalars_callback(local_tb, sync))

        def on_epoch(epoch: int, logs: dict[str, float], seconds: float) -> None:
            shown = "  ".join(f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs)
            log.info("epoch %d/%d  %s  (%.1fs)", epoch, params.epochs, shown, seconds)

        result = train(
            train_split, test_split, params, num_classes=meta.num_classes, on_epoch=on_epoch,
            model=model, initial_epoch=initial_epoch, extra_callbacks=callbacks,
            steps_per_execution=1 if cluster.multi_worker else STEPS_PER_EXECUTION,
        )  # fmt: skip
    result = _with_prior_history(result, prior, params, initial_epoch)
    log.info(
        "test accuracy %.4f, loss %.4f (%d epochs, best %d, %.0fs)",
        result.test_accuracy, result.test_loss, result.epochs_run, result.best_epoch, result.seconds,
    )  # fmt: skip
    summary: dict[str, Any] = {
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.seconds, 2),
        "train_images": result.train_count,
        "val_images": result.val_count,
        "history": result.history,
        "resumed_from_epoch": initial_epoch if resumed is not None else None,
        "replicas": cluster.num_workers,
        "strategy": strategy_name,
        "gpus": gpus,
    }
    if cluster.is_chief:
        export_model = result.model
        if strategy_name != "default":  # a plain copy: saving a mirrored model would wait for the workers
            # (the network alone: save_model makes the inference copy, mirror averaging included)
            export_model = float32_copy(
                result.model, params, image_shape=tuple(train_split.images.shape[1:]), num_classes=meta.num_classes
            )
        artifact = _write_outputs(
            dataclasses.replace(result, model=export_model), args, dirs, meta, params, files, workdir, summary,
            sample=test_split.images[:256],
        )
        summary["model_version"] = artifact.version
        log.info("model %s written to %s (%.0fs in all)", artifact.version, dirs.model, time.monotonic() - started)
    if cluster.multi_worker:
        _barrier(strategy)
    return summary


def _with_prior_history(result: Any, prior: list[dict[str, float]], params: Any, initial_epoch: int) -> Any:
    """The whole run's history (checkpointed epochs + this run's), with absolute epoch numbers."""
    history = [*prior, *result.history]
    if result.history:
        if result.val_count and params.early_stopping_patience > 0:
            best = int(max(result.history, key=lambda r: r.get("val_accuracy", 0.0))["epoch"])
        else:
            best = int(result.history[-1]["epoch"])
    else:
        best = initial_epoch  # nothing left to train: the checkpoint is the model
    return dataclasses.replace(result, history=history, epochs_run=len(history), best_epoch=best)


def _write_outputs(
    result: Any,
    args: argparse.Namespace,
    dirs: OutputDirs,
    meta: PreparedMeta,
    params: Any,
    files: Files,
    workdir: Path,
    summary: dict[str, Any],
    *,
    sample: Any,
) -> ModelArtifact:
    """The chief's outputs: the model folder (exported once, here), then the report (``run.json``
    last: the marker that the job finished)."""
    out = workdir / "out"
    (out / "model").mkdir(parents=True)
    artifact = save_model(
        result, out / "model", meta=meta, params=params, model_name=args.model_name,
        git=GitInfo(commit=args.git_commit, dirty=bool(args.git_dirty)), sample=sample, ood_fpr=args.ood_fpr,
        training={k: summary[k] for k in ("replicas", "strategy", "gpus", "resumed_from_epoch")},
    )  # fmt: skip
    files.upload_tree(out / "model", dirs.model)
    files.write_bytes(join(dirs.report, "train.json"), artifact.card.metrics.model_dump_json(indent=1).encode("utf-8"))
    files.write_bytes(join(dirs.report, "history.csv"), history_csv(result.history).encode("utf-8"))
    body = {**summary, "model_version": artifact.version, "model_dir": dirs.model}
    files.write_bytes(join(dirs.report, RUN_SUMMARY), (json.dumps(body, indent=1) + "\n").encode("utf-8"))
    return artifact


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
    for noisy in ("tensorflow", "absl", "tf2onnx", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        run_task(args, os.environ if env is None else env)
    except EdgeError as exc:
        log.error("error: %s", exc.message)
        if exc.hint:
            log.error("  hint: %s", exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted: the last checkpoint is kept; a new run resumes from it")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
