"""The CustomJob spec: worker pools from edge.yaml, image, args carrying params, env, output
dir, labels - and the SDK's CustomJob built offline from it (anonymous credentials, no network)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from tests.vertex.conftest import gcp_config
from vertex_edge.errors import ConfigError, UsageError
from vertex_edge.gcp.labels import gcp_label
from vertex_edge.params import TrainParams
from vertex_edge.vertex.job import (
    TASK_MODULE,
    TrainerInputs,
    build_job_spec,
    display_name,
    job_output_uri,
    to_custom_job,
    trainer_image,
)

COMMIT = "3f2a9c1d" + "0" * 32
PARAMS = TrainParams(epochs=9, batch_size=256, learning_rate=0.003)


def make_spec(config=None, *, replicas: int | None = None, data_files: dict | None = None):  # noqa: ANN001, ANN201
    config = config or gcp_config()
    name = display_name("fashion-mnist", COMMIT, datetime(2026, 11, 22, 11, 0, 0, tzinfo=UTC))
    inputs = TrainerInputs(
        params=PARAMS, model_name="fashion-mnist", data_uri="gs://my-proj-123-edge/vertex/staging/prepared/abc",
        data_version="0123456789abcdef0123456789abcdef", git_commit=COMMIT, git_dirty=True, data_files=data_files or {},
        ood_fpr=0.03,
    )  # fmt: skip
    return build_job_spec(
        config, inputs, output_uri=job_output_uri(config.gcp.bucket_name, name), name=name,
        image=trainer_image(config, COMMIT), project=config.gcp.project, location=config.gcp.region,
        staging_bucket=f"gs://{config.gcp.bucket_name}", replica_count=replicas,
    )  # fmt: skip


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_default_spec_is_one_t4_replica_with_the_commit_image() -> None:
    spec = make_spec()
    (pool,) = spec.worker_pool_specs
    assert pool["machine_spec"] == {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1}
    assert pool["replica_count"] == 1
    container = pool["container_spec"]
    assert container["image_uri"] == f"europe-west4-docker.pkg.dev/my-proj-123/edge/trainer:{COMMIT}"
    assert container["command"] == ["python", "-m", TASK_MODULE]
    assert spec.output_uri == "gs://my-proj-123-edge/vertex/jobs/fashion-mnist-train-3f2a9c1d-20261122-110000"
    assert spec.scheduling == {"restart_job_on_worker_restart": False}


def test_args_carry_the_params_data_and_lineage() -> None:
    args = make_spec().worker_pool_specs[0]["container_spec"]["args"]
    assert TrainParams.model_validate_json(arg(args, "--params-json")) == PARAMS
    assert arg(args, "--data-uri") == "gs://my-proj-123-edge/vertex/staging/prepared/abc"
    assert arg(args, "--report-dir").endswith("/fashion-mnist-train-3f2a9c1d-20261122-110000/report")
    assert arg(args, "--git-commit") == COMMIT
    assert float(arg(args, "--ood-fpr")) == 0.03  # params.yaml monitor.ood.fpr: the job calibrates the OOD flag
    assert "--git-dirty" in args


def test_labels_carry_commit_and_data_version_and_are_valid_gcp_labels() -> None:
    spec = make_spec()
    assert spec.labels["git_commit"] == COMMIT
    assert spec.labels["data_version"] == "0123456789abcdef0123456789abcdef"
    for key, value in spec.labels.items():
        assert re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key), key
        assert re.fullmatch(r"[a-z0-9_-]{0,63}", value), value
    assert gcp_label("0.9512") == "0_9512"
    assert gcp_label("A/B" * 40) == ("a_b" * 40)[:63]


def test_several_replicas_add_a_worker_pool_and_restart_together() -> None:
    spec = make_spec(replicas=3)
    chief, workers = spec.worker_pool_specs
    assert chief["replica_count"] == 1 and workers["replica_count"] == 2
    assert workers["container_spec"] == chief["container_spec"]
    assert spec.replica_count == 3
    assert spec.scheduling == {"restart_job_on_worker_restart": True}


def test_config_sets_machine_accelerator_replicas_and_image() -> None:
    config = gcp_config(
        training={"machine_type": "a2-highgpu-1g", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 2,
                  "replica_count": 2, "image": "europe-docker.pkg.dev/other/repo/trainer:pinned"},
    )  # fmt: skip
    spec = make_spec(config)
    assert len(spec.worker_pool_specs) == 2
    pool = spec.worker_pool_specs[0]
    assert pool["machine_spec"] == {"machine_type": "a2-highgpu-1g", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 2}
    assert pool["container_spec"]["image_uri"] == "europe-docker.pkg.dev/other/repo/trainer:pinned"


def test_cpu_only_machine_has_no_accelerator_fields() -> None:
    spec = make_spec(gcp_config(training={"accelerator_type": None, "accelerator_count": 0}))
    assert spec.worker_pool_specs[0]["machine_spec"] == {"machine_type": "n1-standard-8"}


def test_dvc_remote_urls_are_passed_per_file() -> None:
    urls = {"train.npz": "gs://b/dvcstore/files/md5/aa/1", "test.npz": "gs://b/dvcstore/files/md5/bb/2"}
    args = make_spec(data_files=urls).worker_pool_specs[0]["container_spec"]["args"]
    assert "--data-file" in args
    assert "train.npz=gs://b/dvcstore/files/md5/aa/1" in args and "test.npz=gs://b/dvcstore/files/md5/bb/2" in args


def test_no_gcp_section_or_no_commit_are_clear_errors() -> None:
    from vertex_edge.config import EdgeConfig

    with pytest.raises(ConfigError, match="gcp"):
        trainer_image(EdgeConfig(), COMMIT)
    with pytest.raises(UsageError, match="not a git checkout"):
        trainer_image(gcp_config(), None)


def test_spec_round_trips_through_json() -> None:
    spec = make_spec(replicas=2)
    from vertex_edge.vertex.job import JobSpec

    assert JobSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_sdk_custom_job_is_built_offline_from_the_spec() -> None:
    """The real aiplatform SDK builds the request without network (anonymous credentials)."""
    from google.auth.credentials import AnonymousCredentials

    spec = make_spec(replicas=2)
    job = to_custom_job(spec, credentials=AnonymousCredentials())
    proto = job._gca_resource
    assert proto.display_name == spec.display_name
    assert dict(proto.labels) == spec.labels
    pools = proto.job_spec.worker_pool_specs
    assert [p.replica_count for p in pools] == [1, 1]
    machine = pools[0].machine_spec
    assert machine.machine_type == "n1-standard-8"
    assert machine.accelerator_type.name == "NVIDIA_TESLA_T4"
    assert machine.accelerator_count == 1
    container = pools[0].container_spec
    assert container.image_uri == f"europe-west4-docker.pkg.dev/my-proj-123/edge/trainer:{COMMIT}"
    assert list(container.command) == ["python", "-m", TASK_MODULE]
    assert TrainParams.model_validate_json(arg(list(container.args), "--params-json")) == PARAMS
    assert {e.name: e.value for e in container.env} == {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    assert pools[0].disk_spec.boot_disk_type == "pd-ssd"
    assert proto.job_spec.base_output_directory.output_uri_prefix == spec.output_uri
    assert job.project == "my-proj-123" and job.location == "europe-west4"
