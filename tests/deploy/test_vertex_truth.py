"""deploy-vertex.py on the gcp target tells the truth (stateful fakes, offline): a corrupt registry
version (its artifact folder in the bucket not matching its card) never becomes the target of a
deploy, a traffic change or a rollback; a deployment is done only when a fresh read of the
endpoint shows it with its traffic; the container gets the capture settings and the endpoint the
request-response logging edge.yaml asks for."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.gcp.fakes import FakeCloud, FakeEndpoints
from tests.serving.tiny_model import write_model_dir
from tests.vertex.fake_aiplatform import ENDPOINT, FakeAiplatform, World
from vertex_edge.deploy.candidate import Candidate, load_candidate
from vertex_edge.deploy.remote_model import verify_model_folder
from vertex_edge.deploy.vertex_endpoint import VertexDeployer
from vertex_edge.errors import CloudError, DataError, RegistryError
from vertex_edge.gate import GatePolicy
from vertex_edge.gcp.files import Files

IMAGE = "europe-west4-docker.pkg.dev/my-proj-123/edge/prediction:3f2a9c1d"
BUCKET = "my-proj-123-edge"
V1, V2, V3 = "20261122T110000Z-aaaaaaaa", "20261123T110000Z-bbbbbbbb", "20261124T110000Z-cccccccc"
CAPTURE = {"EDGE_CAPTURE_URI": f"gs://{BUCKET}/monitoring/fashion-mnist/records", "EDGE_CAPTURE_SAMPLE_RATE": "0.25",
           "EDGE_CAPTURE_FLUSH_S": "10"}  # fmt: skip


class Bucket:
    """gs://my-proj-123-edge as a local folder, through the real Files (which reads paths too)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, uri: str) -> Path:
        assert uri.startswith(f"gs://{BUCKET}/"), uri
        return self.root / uri.removeprefix(f"gs://{BUCKET}/")

    def upload(self, folder: Path, uri: str) -> None:
        Files().upload_tree(folder, str(self.path(uri)))

    def verify(self, uri: str) -> None:
        verify_model_folder(Files(), str(self.path(uri)))


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def cloud() -> FakeCloud:
    cloud = FakeCloud()
    cloud.endpoints[ENDPOINT] = SimpleNamespace(name=ENDPOINT, display_name="fashion-mnist-endpoint", deployed_models=[],
                                                predict_request_response_logging_config=None)  # fmt: skip
    return cloud


@pytest.fixture
def bucket(tmp_path: Path) -> Bucket:
    return Bucket(tmp_path / "bucket")


@pytest.fixture
def deployer(world: World, cloud: FakeCloud, bucket: Bucket) -> VertexDeployer:
    return VertexDeployer(
        aip=FakeAiplatform(world), upload_dir=bucket.upload, project="my-proj-123", location="europe-west4",
        bucket=BUCKET, endpoint_name=ENDPOINT, model_name="fashion-mnist", serving_image=IMAGE,
        verify_model=bucket.verify, serving_env=dict(CAPTURE), endpoint_service=lambda: FakeEndpoints(cloud),
        request_logging_rate=0.25,
    )  # fmt: skip


def candidate(tmp_path: Path, version: str, accuracy: float = 0.93) -> Candidate:
    folder = write_model_dir(tmp_path / "models" / version, version=version, accuracy=accuracy, run_id="12")
    card = json.loads((folder / "model_card.json").read_text())
    evaluation = tmp_path / f"{version}-evaluation.json"
    evaluation.write_text(json.dumps({"model_version": version, "model_sha256": card["artifacts"]["model.onnx"]["sha256"],
                                      "accuracy": accuracy, "log_loss": 0.3, "count": 100}))  # fmt: skip
    policy = GatePolicy(min_accuracy=0.9, max_regression=0.05, source="params.yaml at commit 3f2a9c1d")
    return load_candidate(folder, evaluation_path=evaluation, policy=policy)


def deployed(deployer: VertexDeployer, tmp_path: Path, *versions: str) -> None:
    for version in versions:
        result = deployer.deploy(candidate(tmp_path, version), force=False, dry_run=False)
        assert result.error is None, result.error


def rot(bucket: Bucket, card_version: str, name: str = "model.onnx") -> Path:
    path = bucket.path(f"gs://{BUCKET}/models/fashion-mnist/{card_version}/{name}")
    path.write_bytes(b"bit rot")
    return path


def test_a_rollback_onto_a_corrupt_version_is_refused_and_the_endpoint_untouched(
    deployer: VertexDeployer, world: World, bucket: Bucket, tmp_path: Path
) -> None:
    deployed(deployer, tmp_path, V1, V2)
    rot(bucket, V1)
    world.calls.clear()
    for call in (lambda: deployer.rollback(dry_run=False), lambda: deployer.rollback(dry_run=True),
                 lambda: deployer.deploy_version("1", dry_run=False)):  # fmt: skip
        with pytest.raises(RegistryError) as err:
            call()
        assert "version 1 of 'fashion-mnist' is corrupt" in err.value.message
        assert f"{V1}/model.onnx has sha256" in err.value.message
    assert world.mutations() == [] and world.serving() == {"2": 100}


def test_a_corrupt_rollback_target_names_the_newest_intact_earlier_version(
    deployer: VertexDeployer, world: World, bucket: Bucket, tmp_path: Path
) -> None:
    deployed(deployer, tmp_path, V1, V2, V3)
    rot(bucket, V2, "model_card.json")
    with pytest.raises(RegistryError) as err:
        deployer.rollback(dry_run=False)
    assert "cannot roll" in err.value.message and "back to version 2" in err.value.message
    assert "the endpoint was not changed (version 3 keeps its traffic)" in err.value.message
    assert err.value.hint == "the newest intact earlier version is 1: 'python deploy-vertex.py --version 1'"
    assert world.serving() == {"3": 100}
    rot(bucket, V1, "model.keras")  # any file the card lists
    with pytest.raises(RegistryError) as err:
        deployer.rollback(dry_run=False)
    assert "no earlier version is intact" in (err.value.hint or "")


def test_a_canary_rollback_onto_a_corrupt_previous_version_is_refused(
    deployer: VertexDeployer, world: World, bucket: Bucket, tmp_path: Path
) -> None:
    deployed(deployer, tmp_path, V1)
    deployer.configure(traffic=10)
    deployed(deployer, tmp_path, V2)
    assert world.serving() == {"1": 90, "2": 10}
    (bucket.path(f"gs://{BUCKET}/models/fashion-mnist/{V1}/model.onnx")).unlink()
    with pytest.raises(RegistryError, match="is missing but the model card lists it"):
        deployer.rollback(dry_run=False)
    assert world.serving() == {"1": 90, "2": 10}


def test_reusing_a_registry_version_checks_its_copy_in_the_bucket(
    deployer: VertexDeployer, world: World, bucket: Bucket, tmp_path: Path
) -> None:
    deployed(deployer, tmp_path, V1, V2)
    rot(bucket, V1)
    world.calls.clear()
    with pytest.raises(RegistryError, match="version 1 of 'fashion-mnist' is corrupt"):
        deployer.deploy(candidate(tmp_path, V1), force=True, dry_run=False)
    assert world.mutations() == []


def test_done_only_when_vertex_reports_the_version_with_its_traffic(
    deployer: VertexDeployer, world: World, tmp_path: Path
) -> None:
    result = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    assert result.error is None
    assert any("Vertex AI reports version 1 deployed (1000, ready) with 100% of the traffic" in a for a in result.actions)
    # an endpoint whose traffic update is accepted but not applied: the deploy says so and fails
    aip = deployer.aip
    aip.Endpoint.update = lambda self, traffic_split=None, **kw: world.record("Endpoint.update", traffic_split=traffic_split)
    result = deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    assert isinstance(result.error, CloudError)
    assert "Vertex AI does not report version 2 deployed with 100% of the traffic" in result.error.message
    assert "version 1 (1000): 100%, version 2 (1001): 0%" in result.error.message


def test_the_container_captures_to_the_bucket_and_the_endpoint_logs_requests(
    deployer: VertexDeployer, world: World, cloud: FakeCloud, tmp_path: Path
) -> None:
    plan = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=True)
    assert any("request-response logging on at a sampling rate of 0.25" in a for a in plan.actions)
    assert "update_endpoint" not in cloud.names()
    result = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    upload = dict(world.calls)["Model.upload"]
    assert upload["serving_container_environment_variables"] == CAPTURE
    updates = [c for c in cloud.calls if c.method == "update_endpoint"]
    assert len(updates) == 1 and updates[0].kwargs["paths"] == ["predict_request_response_logging_config"]
    config = updates[0].kwargs["endpoint"].predict_request_response_logging_config
    assert (config.enabled, config.sampling_rate, config.bigquery_destination.output_uri) == (True, 0.25, "bq://my-proj-123")
    assert any(a.startswith("request-response logging turned on at a sampling rate of 0.25") for a in result.actions)
    result = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)  # again: nothing to change
    assert len([c for c in cloud.calls if c.method == "update_endpoint"]) == 1
    assert "request-response logging is on at a sampling rate of 0.25 already (bq://my-proj-123)" in result.actions
    deployer.request_logging_rate = 0.0  # edge.yaml monitoring.request_response_logging: false
    result = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    assert cloud.endpoints[ENDPOINT].predict_request_response_logging_config.enabled is False
    assert "request-response logging turned off" in result.actions


def test_a_failed_logging_change_is_a_note_the_deployment_is_done(
    deployer: VertexDeployer, cloud: FakeCloud, tmp_path: Path
) -> None:
    from google.api_core import exceptions as gexc

    cloud.fail["endpoints.update_endpoint"] = gexc.PermissionDenied("aiplatform.endpoints.update denied")
    result = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    assert result.error is None and any("the deployment itself is done" in n for n in result.notes)


def test_verify_model_folder_names_the_file_by_its_uri(tmp_path: Path) -> None:
    folder = write_model_dir(tmp_path / "m", version=V1)
    assert verify_model_folder(Files(), str(folder)).version == V1
    (folder / "model.onnx").write_bytes(b"x")
    with pytest.raises(DataError) as err:
        verify_model_folder(Files(), str(folder) + "/")
    assert err.value.message.startswith(f"{folder}/model.onnx has sha256")
    (folder / "model_card.json").unlink()
    with pytest.raises(DataError, match="not found"):
        verify_model_folder(Files(), str(folder))


def test_wiring_takes_capture_and_logging_from_edge_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vertex_edge.config import parse_config
    from vertex_edge.deploy import wiring
    from vertex_edge.gcp import clients as gcp_clients
    from vertex_edge.state import Resource, State

    state = State(target="gcp", resources={"endpoint": Resource(kind="vertex-endpoint", name="e", location=ENDPOINT)})
    bundle = SimpleNamespace(storage=object(), artifact_registry=object(), credentials=None)
    monkeypatch.setattr(gcp_clients.GcpClients, "connect", classmethod(lambda cls, project, region: bundle))
    monkeypatch.setattr(wiring, "state_store", lambda clients, names: SimpleNamespace(load=lambda: (state, 1)))
    base = {"target": "gcp", "gcp": {"project": "my-proj-123", "region": "europe-west4"},
            "vertex": {"serving": {"image": IMAGE}}}  # fmt: skip
    deployer = wiring.vertex_deployer(parse_config({**base, "monitoring": {"sample_rate": 0.25}}), tmp_path)
    assert deployer.serving_env == CAPTURE and deployer.request_logging_rate == 0.25
    off = parse_config({**base, "monitoring": {"capture": False, "request_response_logging": False}})
    deployer = wiring.vertex_deployer(off, tmp_path)
    assert deployer.serving_env == {} and deployer.request_logging_rate == 0.0


def test_the_serving_versions_artifact_folder_is_what_monitor_compares_with(
    deployer: VertexDeployer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert deployer.serving_model_uri() is None
    deployed(deployer, tmp_path, V1)
    deployer.configure(traffic=10)
    deployed(deployer, tmp_path, V2)  # a canary: the newest live deployment is the one monitored
    assert deployer.serving_model_uri() == f"gs://{BUCKET}/models/fashion-mnist/{V2}"

    from vertex_edge.cli import monitor as monitor_cli
    from vertex_edge.cli.context import AppContext
    from vertex_edge.config import parse_config

    app_ctx = AppContext(repo=tmp_path, config_path=tmp_path / "edge.yaml")
    app_ctx.set_config(parse_config({"target": "gcp", "gcp": {"project": "my-proj-123"}}))
    monkeypatch.setattr(monitor_cli, "serving_model_dir", lambda config, repo: deployer.serving_model_uri())
    assert monitor_cli._model_dir(app_ctx, None) == f"gs://{BUCKET}/models/fashion-mnist/{V2}"
    assert monitor_cli._model_dir(app_ctx, "gs://elsewhere/m") == "gs://elsewhere/m"
