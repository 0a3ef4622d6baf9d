"""Against a real local GCS emulator (``gcp-storage-emulator``, started on a free port):
bucket creation by the setup step, state save/load through GcsStore, and a DVC push/pull
round trip of real files to the remote the setup step configures.

The emulator does not enforce generation preconditions: the lock's logic is tested on the
local backend and with fakes (test_storage.py); here the real client talks real HTTP.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gcp.conftest import gcp_config, subprocess_env
from tests.gcp.fakes import PROJECT, REGION
from vertex_edge import dvc
from vertex_edge.gcp.clients import GcpClients
from vertex_edge.gcp.names import GcpNames
from vertex_edge.gcp.object_store import state_store
from vertex_edge.provision.engine import Action, apply, plan
from vertex_edge.provision.gcp.bucket import BucketStep
from vertex_edge.provision.gcp.dvc_remote import DvcRemoteStep
from vertex_edge.provision.gcp.env import GcpEnv
from vertex_edge.state import Resource, State

pytestmark = pytest.mark.integration


def emulator_env(storage_client: Any, repo: Path, bucket: str) -> GcpEnv:
    config = gcp_config().model_copy(update={"gcp": gcp_config().gcp.model_copy(update={"bucket": bucket})})
    clients = GcpClients(project=PROJECT, region=REGION, overrides={"storage": storage_client})
    return GcpEnv(names=GcpNames.from_config(config), clients=clients, repo=repo, dvc=dvc)


def test_bucket_step_creates_the_bucket_then_keeps_it(storage_client: Any, tmp_path: Path) -> None:
    env = emulator_env(storage_client, tmp_path, "edge-bucket-create")
    step = BucketStep(env)

    assert step.check().action is Action.CREATE
    report = apply(plan([step]))

    assert report.results[0].action is Action.CREATE
    bucket = storage_client.get_bucket("edge-bucket-create")
    assert bucket.name == "edge-bucket-create"
    again = step.check()
    assert again.action in (Action.KEEP, Action.UPDATE)  # the emulator may not keep every bucket setting
    assert env.bucket_ready


def test_state_save_and_load_round_trip(storage_client: Any, tmp_path: Path) -> None:
    storage_client.create_bucket("edge-bucket-state")
    env = emulator_env(storage_client, tmp_path, "edge-bucket-state")
    store = state_store(env.clients, env.names)

    assert store.load() == (None, 0)
    state = State(target="gcp", resources={"bucket": Resource(kind="gcs-bucket", name="b", location="gs://b")})
    generation = store.save(state, 0)
    loaded, gen = store.load()

    assert generation > 0 and gen == generation
    assert loaded is not None and loaded.resources["bucket"].location == "gs://b"
    assert store.location == "gs://edge-bucket-state/.edge/state.yaml"
    blob = storage_client.bucket("edge-bucket-state").get_blob(".edge/state.yaml")
    assert blob is not None and b"do not edit by hand" in blob.download_as_bytes()

    with store.lock("edge.py test") as info:
        holder = store.holder()
        assert holder is not None and holder.pid == info.pid
    assert store.holder() is None


@pytest.mark.slow
def test_dvc_push_and_pull_round_trip_through_the_configured_remote(
    storage_client: Any, emulator_env: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    # gcsfs's experimental zonal/HNS support asks the Storage Control gRPC API for the bucket
    # type, which an HTTP-only emulator cannot answer: use plain gcsfs against the emulator
    env_vars = subprocess_env(STORAGE_EMULATOR_HOST=emulator_env, GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false")

    def run(*argv: str) -> str:
        result = subprocess.run(argv, cwd=repo, env=env_vars, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"{argv}: {result.stderr}"
        return result.stdout

    run("git", "init", "-q")
    run("git", "config", "user.email", "t@example.com")
    run("git", "config", "user.name", "t")
    storage_client.create_bucket("edge-bucket-dvc")
    env = emulator_env_for_dvc(storage_client, repo)

    report = apply(plan([DvcRemoteStep(env)]))  # dvc init + the remote, in .dvc/config
    assert report.results[0].action is Action.CREATE
    assert dvc.remote_url(repo, "edge-gcs", level="project") == "gs://edge-bucket-dvc/dvcstore"
    assert DvcRemoteStep(env).check().action is Action.KEEP
    # the emulator takes no credentials (test-only, local config)
    run(sys.executable, "-m", "dvc", "remote", "modify", "--local", "edge-gcs", "allow_anonymous_login", "true")

    data = repo / "data"
    data.mkdir()
    files = {"a.bin": bytes(range(256)) * 40, "b.txt": b"fashion-mnist\n" * 1000}
    for name, body in files.items():
        (data / name).write_bytes(body)
    run(sys.executable, "-m", "dvc", "add", "-q", "data")
    run(sys.executable, "-m", "dvc", "push")

    stored = [b.name for b in storage_client.list_blobs("edge-bucket-dvc", prefix="dvcstore/")]
    assert len(stored) >= 3  # the two files and the directory listing

    import shutil

    shutil.rmtree(data)
    shutil.rmtree(repo / ".dvc" / "cache")
    run(sys.executable, "-m", "dvc", "pull")

    for name, body in files.items():
        assert (data / name).read_bytes() == body


def emulator_env_for_dvc(storage_client: Any, repo: Path) -> GcpEnv:
    return emulator_env(storage_client, repo, "edge-bucket-dvc")
