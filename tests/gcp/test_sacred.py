"""Port-forwards opened and closed by edge.py: the kubectl process handling (with a stand-in
kubectl), and the MongoDB URL for training built from Secret Manager at run time."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gcp.conftest import gcp_config
from tests.gcp.fakes import PROJECT, FakeCloud, FakeKube
from vertex_edge.errors import ExternalToolError, NotProvisionedError, TrackingError
from vertex_edge.gcp.kube import open_forward
from vertex_edge.gcp.sacred import mongo_url, mongo_url_via_port_forward, omniboard_via_port_forward


def fake_kubectl(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "kubectl"
    path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_open_forward_yields_the_port_and_stops_kubectl(tmp_path: Path) -> None:
    exe = fake_kubectl(
        tmp_path,
        "print('Forwarding from 127.0.0.1:41234 -> 9000', flush=True)\n"
        "print('Forwarding from [::1]:41234 -> 9000', flush=True)\n"
        "time.sleep(60)",
    )
    with open_forward([str(exe), "port-forward", "svc/x", ":9000"]) as forward:
        assert forward.port == 41234
        assert forward.url == "http://127.0.0.1:41234"
        assert forward.alive()
        process = forward.process
    assert process is not None and process.poll() is not None  # stopped on exit


def test_open_forward_reports_kubectl_errors(tmp_path: Path) -> None:
    exe = fake_kubectl(tmp_path, "sys.stderr.write('error: services \"x\" not found\\n'); sys.exit(1)")
    with pytest.raises(ExternalToolError, match='exited with code 1: error: services "x" not found'):
        with open_forward([str(exe), "port-forward"]):
            pass


def test_open_forward_times_out_and_kills_kubectl(tmp_path: Path) -> None:
    exe = fake_kubectl(tmp_path, "time.sleep(60)")
    with pytest.raises(ExternalToolError, match="did not start listening within 0.5 s"):
        with open_forward([str(exe), "port-forward"], ready_timeout=0.5):
            pass


def test_open_forward_without_kubectl_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ExternalToolError) as err:
        with open_forward([str(tmp_path / "nowhere" / "kubectl"), "port-forward"]):
            pass
    assert "was not found" in err.value.message


def test_forward_wait_returns_when_kubectl_ends(tmp_path: Path) -> None:
    exe = fake_kubectl(tmp_path, "print('Forwarding from 127.0.0.1:40000 -> 27017', flush=True); time.sleep(0.3)")
    with open_forward([str(exe)]) as forward:
        forward.wait(poll=0.05)
        assert not forward.alive()


def test_mongo_url_for_training_is_the_writers_with_its_password_from_secret_manager(cloud: FakeCloud, kube: FakeKube) -> None:
    cloud.provision_everything(kube, password="s3cret_-pass")
    clients = cloud.clients(kube)

    with mongo_url_via_port_forward(gcp_config(), clients) as url:  # the Sacred writer, never root
        assert url == "mongodb://sacred-writer:writer-pw@127.0.0.1:45678/sacred?authSource=admin"
        assert kube.forwards == [("sacred", "sacred-mongodb", 27017)]

    names = [f"{c.client}.{c.method}" for c in cloud.calls]
    assert names == ["secret_manager.access_secret_version", "kube.open", "kubectl.get", "kubectl.port-forward"]
    assert cloud.calls[0].kwargs == {
        "request": {"name": f"projects/{PROJECT}/secrets/edge-cluster-mongodb-writer-password/versions/latest"}
    }


def test_mongo_url_escapes_and_redacts() -> None:
    from vertex_edge.redact import redact_url

    url = mongo_url("sa cred", "p@ss/word", 1234)
    assert url == "mongodb://sa%20cred:p%40ss%2Fword@127.0.0.1:1234/sacred?authSource=admin"
    assert "p%40ss" not in redact_url(url)


def test_mongo_url_before_setup_says_to_run_setup(cloud: FakeCloud, kube: FakeKube) -> None:
    with pytest.raises(NotProvisionedError, match="no enabled version"):
        with mongo_url_via_port_forward(gcp_config(), cloud.clients(kube)):
            pass


def test_port_forward_to_a_missing_service_says_to_run_setup(cloud: FakeCloud, kube: FakeKube) -> None:
    cloud.secrets[f"projects/{PROJECT}/secrets/edge-cluster-mongodb-password"] = [b"pw"]
    with pytest.raises(NotProvisionedError, match="service sacred-omniboard is not in namespace sacred"):
        with omniboard_via_port_forward(gcp_config(), cloud.clients(kube)):
            pass


def test_no_port_forward_when_tracking_goes_elsewhere(cloud: FakeCloud, kube: FakeKube) -> None:
    config = gcp_config(mongodb_url="mongodb://mongo.example.com:27017")
    for opener in (mongo_url_via_port_forward, omniboard_via_port_forward):
        with pytest.raises(TrackingError, match="no (MongoDB|Omniboard) in GKE"):
            with opener(config, cloud.clients(kube)):  # type: ignore[operator]
                pass
    assert cloud.calls == []


def test_dashboard_fails_clearly_when_the_forward_dies(
    cloud: FakeCloud, kube: FakeKube, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import io

    from rich.console import Console

    from vertex_edge.cli import setup_gcp
    from vertex_edge.cli.context import AppContext
    from vertex_edge.errors import CloudError, UsageError
    from vertex_edge.gcp.kube import Forward

    cloud.provision_everything(kube)
    monkeypatch.setattr(setup_gcp, "connect", lambda config: cloud.clients(kube))
    monkeypatch.setattr(Forward, "wait", lambda self, poll=0.5: None)
    app_ctx: Any = AppContext(repo=tmp_path, config_path=tmp_path / "edge.yaml", console=Console(file=io.StringIO()))

    with pytest.raises(CloudError, match="port-forward to Omniboard stopped"):
        setup_gcp.dashboard(app_ctx, gcp_config())

    monkeypatch.setenv("EDGE_DASHBOARD_PORT", "9999")
    with pytest.raises(CloudError):
        setup_gcp.dashboard(app_ctx, gcp_config())
    assert kube.forwards[-1] == ("sacred", "sacred-omniboard", 9000)

    monkeypatch.setenv("EDGE_DASHBOARD_PORT", "not-a-port")
    with pytest.raises(UsageError, match="must be a port number"):
        setup_gcp.dashboard(app_ctx, gcp_config())
