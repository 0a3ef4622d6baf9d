"""deploy-vertex.py on the gcp target, with the aiplatform SDK injected (a stateful fake): first
deploy, redeploy without downtime, canary, rollback, and failures that leave the old traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from tests.serving.tiny_model import write_model_dir
from tests.vertex.fake_aiplatform import ENDPOINT, FakeAiplatform, World
from vertex_edge.deploy.candidate import Candidate, load_candidate
from vertex_edge.deploy.vertex_endpoint import VertexDeployer
from vertex_edge.deploy.wiring import vertex_deployer
from vertex_edge.errors import CloudError, QualityGateError, RegistryError, UsageError
from vertex_edge.gate import GatePolicy

IMAGE = "europe-west4-docker.pkg.dev/my-proj-123/edge/prediction:3f2a9c1d"


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def uploads() -> list[tuple[list[str], str]]:
    return []


@pytest.fixture
def deployer(world: World, uploads: list[tuple[list[str], str]]) -> VertexDeployer:
    def upload_dir(folder: Path, uri: str) -> None:
        uploads.append((sorted(p.name for p in folder.iterdir()), uri))

    return VertexDeployer(
        aip=FakeAiplatform(world), upload_dir=upload_dir, project="my-proj-123", location="europe-west4",
        bucket="my-proj-123-edge", endpoint_name=ENDPOINT, model_name="fashion-mnist", serving_image=IMAGE,
        machine_type="n1-standard-4", min_replicas=1, max_replicas=3,
    )  # fmt: skip


def candidate(tmp_path: Path, version: str, accuracy: float = 0.93, gate: float = 0.9, max_regression: float = 0.01) -> Candidate:
    folder = write_model_dir(tmp_path / version, version=version, accuracy=accuracy, run_id="12")
    card = json.loads((folder / "model_card.json").read_text())
    evaluation = tmp_path / f"{version}-evaluation.json"
    evaluation.write_text(json.dumps({"model_version": version, "model_sha256": card["artifacts"]["model.onnx"]["sha256"],
                                      "accuracy": accuracy, "log_loss": 0.3, "count": 100}))  # fmt: skip
    policy = GatePolicy(min_accuracy=gate, max_regression=max_regression, source="params.yaml at commit 3f2a9c1d")
    return load_candidate(folder, evaluation_path=evaluation, policy=policy)


V1, V2, V3 = "20261122T110000Z-aaaaaaaa", "20261123T110000Z-bbbbbbbb", "20261124T110000Z-cccccccc"


def test_first_deploy_uploads_a_version_with_lineage_and_gives_it_all_traffic(
    deployer: VertexDeployer, world: World, uploads: list, tmp_path: Path
) -> None:
    result = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    assert world.mutations() == ["Model.upload", "Endpoint.deploy"]
    upload = dict(world.calls)["Model.upload"]
    assert upload["parent_model"] is None and upload["display_name"] == "fashion-mnist"
    assert upload["artifact_uri"] == f"gs://my-proj-123-edge/models/fashion-mnist/{V1}"
    assert upload["serving_container_image_uri"] == IMAGE
    assert upload["serving_container_predict_route"] == "/predict"
    assert upload["serving_container_health_route"] == "/health"
    assert upload["serving_container_ports"] == [8080]
    assert upload["version_aliases"] == [f"v{V1}"]
    assert upload["labels"] == {
        "managed-by": "vertex-edge", "git_commit": "3f2a9c1d" + "0" * 32, "git_dirty": "false",
        "data_version": "md5_0123456789abcdef", "sacred_run_id": "12", "test_accuracy": "0_9300", "quality_gate": "passed",
        "gate_threshold": "0_9000",
    }  # fmt: skip
    assert "(params.yaml at commit 3f2a9c1d)" in upload["version_description"]
    assert uploads == [(["model.keras", "model.onnx", "model_card.json"], upload["artifact_uri"])]
    deploy = dict(world.calls)["Endpoint.deploy"]
    assert deploy["traffic_percentage"] == 100
    assert (deploy["machine_type"], deploy["min_replica_count"], deploy["max_replica_count"]) == ("n1-standard-4", 1, 3)
    assert world.serving() == {"1": 100}
    assert result.version == "1" and result.changed
    assert any(ENDPOINT + ":predict" in line for line in result.how_to_call)


def test_redeploy_is_zero_downtime(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    world.calls.clear()
    world.traffic_at.clear()
    result = deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    assert world.mutations() == ["Model.upload", "Endpoint.deploy", "Endpoint.update", "Endpoint.undeploy"]
    parent = next(iter(world.models))
    assert dict(world.calls)["Model.upload"]["parent_model"] == parent  # a new version of the same model
    assert dict(world.calls)["Endpoint.deploy"]["traffic_percentage"] == 0  # alongside, no traffic yet
    # the old version keeps all traffic until the new one is deployed; it is undeployed only after the switch
    assert world.traffic_at == [
        ("Model.upload", {"1": 100}),
        ("Endpoint.deploy", {"1": 100}),
        ("Endpoint.update", {"1": 100, "2": 0}),
        ("Endpoint.undeploy", {"1": 0, "2": 100}),
    ]
    assert world.serving() == {"2": 100}
    assert result.version == "2"


def test_the_same_model_again_changes_nothing(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    world.calls.clear()
    result = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    assert world.mutations() == []
    assert any("already holds model" in a for a in result.actions)
    assert any("already sends 100%" in a for a in result.actions)


def test_canary_then_promote(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    deployer.configure(traffic=10)
    world.calls.clear()
    deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    assert world.mutations() == ["Model.upload", "Endpoint.deploy", "Endpoint.update"]  # nothing undeployed
    assert world.serving() == {"1": 90, "2": 10}
    deployer.configure(traffic=100)
    world.calls.clear()
    deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    assert world.mutations() == ["Endpoint.update", "Endpoint.undeploy"]  # no second upload or deployment
    assert world.serving() == {"2": 100}


def test_rollback_during_a_canary_restores_the_previous_traffic(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    deployer.configure(traffic=25)
    deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    world.calls.clear()
    result = deployer.rollback(dry_run=False)
    assert world.mutations() == ["Endpoint.update", "Endpoint.undeploy"]
    assert dict(world.calls)["Endpoint.update"]["traffic_split"] == {world.deployed[0].id: 100}
    assert world.serving() == {"1": 100}
    assert result.version == "1"


def test_rollback_after_a_switch_redeploys_the_previous_version(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    world.calls.clear()
    world.traffic_at.clear()
    plan = deployer.rollback(dry_run=True)
    assert world.mutations() == [] and any("back from version 2 to version 1" in a for a in plan.actions)
    deployer.rollback(dry_run=False)
    assert world.mutations() == ["Endpoint.deploy", "Endpoint.update", "Endpoint.undeploy"]
    assert dict(world.calls)["Endpoint.deploy"]["model"][1] == "1"
    assert world.traffic_at[1] == ("Endpoint.update", {"2": 100, "1": 0})
    assert world.serving() == {"1": 100}


def test_rollback_with_nothing_earlier_is_a_registry_error(deployer: VertexDeployer, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no deployment to roll back"):
        deployer.rollback(dry_run=False)
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    with pytest.raises(RegistryError, match="no earlier version"):
        deployer.rollback(dry_run=False)


def test_a_failed_deployment_leaves_the_old_model_its_traffic(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    world.fail_next["Endpoint.deploy"] = gexc.ResourceExhausted("quota exceeded for n1-standard-4")
    with pytest.raises(CloudError) as err:
        deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    assert "traffic is unchanged" in err.value.message and "version 1" in err.value.message
    assert world.serving() == {"1": 100}
    assert "Endpoint.update" not in world.mutations()


def test_a_failed_switch_removes_the_new_deployment(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    world.fail_next["Endpoint.update"] = gexc.ServiceUnavailable("try again")
    with pytest.raises(CloudError, match="traffic is unchanged"):
        deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    assert world.serving() == {"1": 100}  # the half-done new deployment was undeployed


def test_a_failed_undeploy_after_the_switch_is_a_note_and_a_rerun_cleans_up(
    deployer: VertexDeployer, world: World, tmp_path: Path
) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    world.fail_next["Endpoint.undeploy"] = gexc.ServiceUnavailable("try again")
    result = deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    assert world.serving() == {"1": 0, "2": 100}
    assert any("could not be undeployed" in n for n in result.notes)
    deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    assert world.serving() == {"2": 100}


def test_quality_gate_and_force(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    weak = candidate(tmp_path, V3, accuracy=0.5)
    with pytest.raises(QualityGateError, match="below the quality gate"):
        deployer.deploy(weak, force=False, dry_run=False)
    assert world.calls == []
    result = deployer.deploy(weak, force=True, dry_run=False)
    upload = dict(world.calls)["Model.upload"]
    assert upload["labels"]["quality_gate"] == "forced" and upload["labels"]["forced_by"]
    assert "deployed with --force by" in upload["version_description"]
    assert any("--force" in n for n in result.notes)


def test_champion_challenger_uses_the_serving_version_labels(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1, accuracy=0.93), force=False, dry_run=False)
    world.calls.clear()
    worse = candidate(tmp_path, V2, accuracy=0.90, gate=0.85)
    plan = deployer.deploy(worse, force=False, dry_run=True)
    assert "champion/challenger: challenger 0.9000 vs champion version 1 0.9300 (-0.0300; tolerance -0.0100): REFUSED" in plan.actions
    assert isinstance(plan.error, QualityGateError) and world.mutations() == []
    with pytest.raises(QualityGateError, match="more than deploy.max_regression 0.0100"):
        deployer.deploy(worse, force=False, dry_run=False)
    assert world.mutations() == []
    deployer.deploy(worse, force=True, dry_run=False)
    assert dict(world.calls)["Model.upload"]["labels"]["quality_gate"] == "forced"
    assert world.serving() == {"2": 100}


def test_dry_run_calls_nothing_that_changes(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    first = deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=True)
    assert world.mutations() == []
    assert any("register it as its first version" in a for a in first.actions)
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    world.calls.clear()
    plan = deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=True)
    assert world.mutations() == []
    text = "\n".join(plan.actions)
    assert "with 0% traffic" in text and "give it 100% of the traffic" in text and "then undeploy version 1" in text


def test_deploy_a_registered_version(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    deployer.deploy(candidate(tmp_path, V2), force=False, dry_run=False)
    deployer.deploy_version("1", dry_run=False)
    assert world.serving() == {"1": 100}
    with pytest.raises(RegistryError, match="no registry version '9'"):
        deployer.deploy_version("9", dry_run=False)


def test_confirmation_is_asked_before_any_change(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    asked: list[str] = []

    def refuse(question: str) -> None:
        asked.append(question)
        raise UsageError("needs confirmation: pass --yes")

    deployer.configure(confirm=refuse)
    with pytest.raises(UsageError):
        deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    assert world.mutations() == [] and "100% of the traffic" in asked[0]
    with pytest.raises(UsageError, match="percentage from 1 to 100"):
        deployer.configure(traffic=0)


def test_traffic_flag_is_refused_on_the_local_target(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    import yaml

    from vertex_edge.cli.deploy import main

    (tmp_path / "edge.yaml").write_text(yaml.safe_dump({"target": "local", "storage": {"root": str(tmp_path / ".edge")}}))
    code = main(["--repo", str(tmp_path), "--traffic", "10", "--dry-run"])
    assert code == 2
    assert "--traffic applies to the gcp target" in capsys.readouterr().err


def test_a_missing_prediction_image_is_refused_before_uploading(deployer: VertexDeployer, world: World, tmp_path: Path) -> None:
    def missing(image: str) -> None:
        raise UsageError(f"the image {image} is not in Artifact Registry")

    deployer.image_check = missing
    with pytest.raises(UsageError, match="prediction:3f2a9c1d is not in Artifact Registry"):
        deployer.deploy(candidate(tmp_path, V1), force=False, dry_run=False)
    assert world.mutations() == []


def test_from_config_reads_the_endpoint_from_the_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from tests.vertex.conftest import gcp_config
    from vertex_edge.deploy import wiring
    from vertex_edge.gcp import clients as gcp_clients
    from vertex_edge.state import Resource, State

    state = State(target="gcp", resources={"endpoint": Resource(kind="vertex-endpoint", name="fashion-mnist-endpoint",
                                                                location=ENDPOINT)})  # fmt: skip
    bundle = SimpleNamespace(storage=object(), artifact_registry=object(), credentials="creds")
    monkeypatch.setattr(gcp_clients.GcpClients, "connect", classmethod(lambda cls, project, region: bundle))
    monkeypatch.setattr(wiring, "state_store", lambda clients, names: SimpleNamespace(load=lambda: (state, 1)))
    config = gcp_config(serving={"machine_type": "n1-standard-4", "min_replicas": 2, "max_replicas": 4,
                                 "image": "europe-west4-docker.pkg.dev/my-proj-123/edge/prediction:v9"})  # fmt: skip
    deployer = vertex_deployer(config, tmp_path)
    assert deployer.endpoint_name == ENDPOINT and deployer.bucket == "my-proj-123-edge"
    assert (deployer.machine_type, deployer.min_replicas, deployer.max_replicas) == ("n1-standard-4", 2, 4)
    assert deployer.serving_image.endswith("/prediction:v9") and deployer.credentials == "creds"
    monkeypatch.setattr(wiring, "state_store", lambda clients, names: SimpleNamespace(load=lambda: (None, 0)))
    from vertex_edge.errors import NotProvisionedError

    with pytest.raises(NotProvisionedError, match="records no Vertex AI endpoint"):
        vertex_deployer(config, tmp_path)
