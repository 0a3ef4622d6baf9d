"""The environment contract: AIP_* folders, TF_CONFIG / CLUSTER_SPEC, who is the chief."""

from __future__ import annotations

import json

import pytest

from vertex_edge.errors import ConfigError, UsageError
from vertex_edge.vertex.contract import OutputDirs, aip_env, cluster_from_env, local_cluster_envs


def test_aip_dirs_follow_the_base_output_directory() -> None:
    assert aip_env("gs://b/vertex/jobs/x") == {
        "AIP_MODEL_DIR": "gs://b/vertex/jobs/x/model/",
        "AIP_CHECKPOINT_DIR": "gs://b/vertex/jobs/x/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": "gs://b/vertex/jobs/x/logs/",
    }


def test_output_dirs_from_env_and_report_beside_the_model() -> None:
    dirs = OutputDirs.from_env(aip_env("gs://b/jobs/x"))
    assert dirs.model == "gs://b/jobs/x/model/"
    assert dirs.checkpoints == "gs://b/jobs/x/checkpoints/"
    assert dirs.report == "gs://b/jobs/x/report"
    local = OutputDirs.from_env({}, model="/tmp/out/model")
    assert local.checkpoints is None and local.tensorboard is None and local.report == "/tmp/out/report"


def test_no_model_dir_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="AIP_MODEL_DIR"):
        OutputDirs.from_env({})


def test_single_replica_without_cluster_env() -> None:
    cluster = cluster_from_env({})
    assert not cluster.multi_worker and cluster.is_chief and cluster.num_workers == 1


def test_vertex_cluster_spec_maps_pools_to_chief_and_workers() -> None:
    spec = {
        "cluster": {"workerpool0": ["cmle-0:2222"], "workerpool1": ["cmle-1:2222", "cmle-2:2222"]},
        "environment": "cloud",
        "task": {"type": "workerpool1", "index": 1},
    }
    cluster = cluster_from_env({"CLUSTER_SPEC": json.dumps(spec)})
    assert cluster.spec == {"chief": ["cmle-0:2222"], "worker": ["cmle-1:2222", "cmle-2:2222"]}
    assert cluster.task_type == "worker" and cluster.task_index == 1
    assert cluster.num_workers == 3 and cluster.multi_worker and not cluster.is_chief


def test_tf_config_wins_and_worker_zero_is_chief_without_a_chief() -> None:
    tf_config = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    cluster = cluster_from_env({"TF_CONFIG": json.dumps(tf_config), "CLUSTER_SPEC": "not even json"})
    assert cluster.is_chief and cluster.num_workers == 2


def test_bad_cluster_env_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        cluster_from_env({"TF_CONFIG": "{"})
    ps = {"cluster": {"chief": ["a:1"], "worker": ["b:1"], "ps": ["c:1"]}, "task": {"type": "ps", "index": 0}}
    with pytest.raises(ConfigError, match="parameter servers"):
        cluster_from_env({"TF_CONFIG": json.dumps(ps)})


def test_local_cluster_envs_look_like_vertex() -> None:
    envs = local_cluster_envs(3, [5001, 5002, 5003])
    clusters = [cluster_from_env(e) for e in envs]
    assert [c.role for c in clusters] == ["chief:0", "worker:0", "worker:1"]
    assert [c.is_chief for c in clusters] == [True, False, False]
    assert all(c.spec == {"chief": ["localhost:5001"], "worker": ["localhost:5002", "localhost:5003"]} for c in clusters)
    # the CLUSTER_SPEC alone gives the same answer
    alone = [cluster_from_env({"CLUSTER_SPEC": e["CLUSTER_SPEC"]}) for e in envs]
    assert [c.role for c in alone] == ["chief:0", "worker:0", "worker:1"]
    assert local_cluster_envs(1, []) == [{}]
