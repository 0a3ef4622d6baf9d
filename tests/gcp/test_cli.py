"""The gcp commands end to end through ``edge.py``: setup (offline dry run, with fakes, lock
held, confirmation), force-unlock, teardown, experiments dashboard, and the secrets audit."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gcp import kubestub
from tests.gcp.conftest import gcp_config, subprocess_env
from tests.gcp.fakes import PROJECT, REGION, FakeCloud, FakeDvc, FakeKube
from vertex_edge.cli import setup_gcp
from vertex_edge.cli import teardown as teardown_cli
from vertex_edge.cli.edge import main
from vertex_edge.config import write_config

REPO = Path(__file__).resolve().parents[2]
BUCKET = f"{PROJECT}-edge"
SETUP = ["setup", "--target", "gcp", "--project", PROJECT, "--region", REGION]
STEP_TITLES = (
    "Google Cloud APIs", "GCS bucket", "Artifact Registry repository", "GKE Autopilot cluster", "MongoDB password",
    "MongoDB writer password", "MongoDB reader password", "Kubernetes Secrets (MongoDB)", "Sacred on GKE (helm)",
    "MongoDB users (least privilege)", "Vertex AI endpoint", "state file",
)  # fmt: skip
# what the plan names each resource, computed offline from edge.yaml
FULL_NAMES = {
    "Google Cloud APIs": f"9 APIs in projects/{PROJECT}: storage, aiplatform, container,",
    "GCS bucket": f"gs://{BUCKET} in {REGION}, versioned, uniform access",
    "Artifact Registry repository": f"Docker repository {REGION}-docker.pkg.dev/{PROJECT}/edge",
    "GKE Autopilot cluster": f"edge-cluster in {REGION}, Autopilot, REGULAR release channel",
    "MongoDB password": f"generated, in Secret Manager secret projects/{PROJECT}/secrets/edge-cluster-mongodb-password",
    "MongoDB writer password": "generated, in Secret Manager secret "
    f"projects/{PROJECT}/secrets/edge-cluster-mongodb-writer-password",
    "MongoDB reader password": "generated, in Secret Manager secret "
    f"projects/{PROJECT}/secrets/edge-cluster-mongodb-reader-password",
    "Kubernetes Secrets (MongoDB)": "sacred/sacred-mongodb-auth, sacred/sacred-mongodb-reader in cluster edge-cluster",
    "MongoDB users (least privilege)": "sacred-writer (readWrite on database sacred: training and 'edge.py experiments'), "
    "omniboard (read on database sacred: Omniboard) in sacred-mongodb",
    "Sacred on GKE (helm)": "release sacred in namespace sacred of cluster edge-cluster: "
    "services sacred-mongodb:27017, sacred-omniboard:9000 (ClusterIP)",
    "Vertex AI endpoint": f"fashion-mnist-endpoint in projects/{PROJECT}/locations/{REGION}",
    "state file": f"gs://{BUCKET}/.edge/state.yaml",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EDGE_") or name == "CI":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.fixture
def wired(
    monkeypatch: pytest.MonkeyPatch, cloud: FakeCloud, kube: FakeKube, fake_dvc: FakeDvc
) -> FakeCloud:
    """edge.py on the fake clients: connect() returns them; DVC is faked; nothing sleeps."""
    clients = cloud.clients(kube)
    monkeypatch.setattr(setup_gcp, "connect", lambda config: clients)
    real_make_env = setup_gcp.make_env

    def make_env(*args: Any, **kwargs: Any) -> Any:
        env = real_make_env(*args, **kwargs)
        env.dvc = fake_dvc
        env.sleep = lambda seconds: None
        env.mongo = cloud.mongo.client
        return env

    monkeypatch.setattr(setup_gcp, "make_env", make_env)
    monkeypatch.setattr(teardown_cli, "make_env", make_env)
    monkeypatch.setattr("vertex_edge.proc.which", lambda tool: f"/usr/bin/{tool}")
    return cloud


def test_dry_run_offline_prints_every_step_not_checked_with_the_reason_once(repo: Path, tmp_path: Path) -> None:
    """The done criterion, as a user runs it on a machine that cannot reach GCP: every resource
    named in full, "not checked", and the reason said once."""
    env = subprocess_env(
        HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="true", COLUMNS="250"
    )
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "CI"):
        env.pop(name, None)
    env = {k: v for k, v in env.items() if not k.startswith("EDGE_")}

    result = subprocess.run(
        [sys.executable, str(REPO / "edge.py"), "--repo", str(repo), *SETUP, "--dry-run"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip

    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Traceback" not in out
    assert out.count("no Application Default Credentials") == 1
    assert "gcloud auth application-default login" in out
    plan = out.split("Plan for target 'gcp'")[1]
    for title in STEP_TITLES:
        line = next(line for line in plan.splitlines() if title in line)
        assert line.strip().startswith("not checked"), line
        assert f"{title}  {FULL_NAMES[title]}" in line, line
    assert "Google Cloud cannot be used (see 'Application Default Credentials' above)" in plan
    assert "dry run: nothing was changed" in out
    assert not (repo / "edge.yaml").exists()


def test_setup_without_credentials_fails_cleanly(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vertex_edge.errors import CloudError

    def no_adc(config: Any) -> Any:
        raise CloudError("no Application Default Credentials (not found)", hint="run 'gcloud auth ...'")

    monkeypatch.setattr(setup_gcp, "connect", no_adc)
    monkeypatch.setattr("vertex_edge.proc.which", lambda tool: f"/usr/bin/{tool}")

    code = main(["--repo", str(repo), *SETUP, "--yes"])

    out, err = capsys.readouterr()
    assert code == 1
    assert "error: nothing was changed: no Application Default Credentials" in err
    assert "Traceback" not in out + err
    assert not (repo / "edge.yaml").exists()


def test_setup_then_rerun_through_the_cli(repo: Path, wired: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", str(repo), *SETUP, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "gcp target ready" in out
    for n, title in enumerate(("Google Cloud APIs", "GCS bucket"), start=1):
        assert f"[{n}/13] {title}" in out
    config = yaml.safe_load((repo / "edge.yaml").read_text())
    assert config["target"] == "gcp" and config["gcp"]["project"] == PROJECT
    assert ".edge/state.yaml" in wired.buckets[BUCKET].objects

    wired.calls.clear()
    assert main(["--repo", str(repo), "setup", "--yes"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert [c.method for c in wired.mutations()] == ["upload", "delete_blob"]  # the lock only


def test_setup_off_a_terminal_needs_yes(repo: Path, wired: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--repo", str(repo), *SETUP])

    assert code == 2
    assert "needs confirmation: pass --yes" in capsys.readouterr().err
    assert wired.mutations() == []
    assert not (repo / "edge.yaml").exists()


def test_second_edge_py_fails_at_once_then_force_unlock(
    repo: Path, wired: FakeCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repo", str(repo), *SETUP, "--yes"]) == 0
    lock = b"user: alice\nhost: laptop\npid: 99\ncommand: edge.py setup --target gcp\nsince: '2026-11-22T10:00:00+00:00'\n"
    wired.buckets[BUCKET].objects[".edge/state.lock"] = (lock, 1)
    capsys.readouterr()

    assert main(["--repo", str(repo), "setup", "--yes"]) == 3
    err = capsys.readouterr().err
    assert "locked by alice@laptop (pid 99, 'edge.py setup --target gcp')" in err
    assert "force-unlock" in err

    assert main(["--repo", str(repo), "force-unlock", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "lock held by alice@laptop" in out and "lock removed" in out
    assert ".edge/state.lock" not in wired.buckets[BUCKET].objects


def test_teardown_through_the_cli(repo: Path, wired: FakeCloud, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", str(repo), *SETUP, "--yes"]) == 0
    wired.calls.clear()
    capsys.readouterr()

    assert main(["--repo", str(repo), "teardown", "--dry-run"]) == 0
    assert wired.mutations() == []
    assert "will delete   GKE cluster" in capsys.readouterr().out

    assert main(["--repo", str(repo), "teardown"]) == 2  # off a terminal: --yes required
    assert main(["--repo", str(repo), "teardown", "--yes", "--delete-data"]) == 0
    out = capsys.readouterr().out
    assert "teardown done" in out
    assert not wired.buckets and not wired.clusters and not wired.endpoints


def test_dashboard_opens_a_port_forward_to_omniboard(
    repo: Path, wired: FakeCloud, kube: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vertex_edge.gcp.kube import Forward

    assert main(["--repo", str(repo), *SETUP, "--yes"]) == 0
    capsys.readouterr()

    def ctrl_c(self: Forward, poll: float = 0.5) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Forward, "wait", ctrl_c)
    assert main(["--repo", str(repo), "experiments", "dashboard"]) == 0

    out = capsys.readouterr().out
    assert "Omniboard: http://127.0.0.1:45678" in out
    assert "port-forward closed" in out
    assert kube.forwards[-1] == ("sacred", "sacred-omniboard", 9000)  # (setup's to MongoDB before it)
    assert [a for a in kube.argv if a[:3] == ["kubectl", "get", "service"]][-1] == [
        "kubectl", "get", "service", "sacred-omniboard", "--namespace", "sacred", "-o", "name"
    ]  # fmt: skip


def test_dashboard_with_tracking_off_points_at_experiments_list(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = gcp_config(enabled=False)
    write_config(config, repo / "edge.yaml")

    assert main(["--repo", str(repo), "experiments", "dashboard"]) == 0
    assert "edge.py experiments list" in capsys.readouterr().out


class FakeCredentials:
    token = "ya29.fake-access-token"  # noqa: S105 - a fake
    valid = True


def test_the_generated_password_appears_in_no_output_log_argv_config_or_state(
    repo: Path,
    tmp_path: Path,
    cloud: FakeCloud,
    fake_dvc: FakeDvc,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import tempfile

    from vertex_edge.gcp.clients import _default_kube

    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # where the kubeconfigs go
    stub = kubestub.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{stub}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(kubestub.STATE_ENV, str(stub))
    # the real kubeconfig writer and ToolRunner (proc.run), on stand-in kubectl/helm executables
    clients = dataclasses.replace(cloud.clients(), credentials=FakeCredentials(), kube_factory=_default_kube)
    monkeypatch.setattr(setup_gcp, "connect", lambda config: clients)
    real_make_env = setup_gcp.make_env

    def make_env(*args: Any, **kwargs: Any) -> Any:
        env = real_make_env(*args, **kwargs)
        env.dvc, env.sleep, env.mongo = fake_dvc, (lambda seconds: None), cloud.mongo.client
        cloud.mongo.running = True  # helm/sacred through the stand-in helm
        return env

    monkeypatch.setattr(setup_gcp, "make_env", make_env)
    argvs: list[list[str]] = []
    real_popen = subprocess.Popen

    class SpyPopen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *a: Any, **k: Any) -> None:
            argvs.append([str(x) for x in args])
            super().__init__(args, *a, **k)

    monkeypatch.setattr(subprocess, "Popen", SpyPopen)
    caplog.set_level(logging.DEBUG)

    assert main(["--verbose", "--repo", str(repo), *SETUP, "--yes"]) == 0
    assert main(["--verbose", "--repo", str(repo), "setup", "--yes"]) == 0  # the checks read it back

    passwords = {role: cloud.secrets[f"projects/{PROJECT}/secrets/edge-cluster-mongodb{role}-password"][0].decode()
                 for role in ("", "-writer", "-reader")}  # fmt: skip
    password = passwords[""]
    out, err = capfd.readouterr()
    stub_calls = kubestub.calls(stub)
    captured = {
        "stdout": out,
        "stderr": err,
        "logs": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "subprocess argv": json.dumps(argvs),
        "kubectl/helm argv": json.dumps([c["argv"] for c in stub_calls]),
        "edge.yaml": (repo / "edge.yaml").read_text(),
        "state": cloud.buckets[BUCKET].objects[".edge/state.yaml"][0].decode(),
        "helm values": json.dumps([c["stdin"] for c in stub_calls if c["tool"] == "helm"]),
    }
    for where, text in captured.items():
        for role, secret in passwords.items():
            assert secret not in text, f"the {role or 'root'} password leaked into {where}"
            assert base64.b64encode(secret.encode()).decode() not in text, f"the encoded password leaked into {where}"
    assert len(password) >= 40 and len(set(passwords.values())) == 3
    # the writer's never reaches the cluster; the users were made by root over the MongoDB protocol
    assert all(base64.b64encode(passwords["-writer"].encode()).decode() not in c["stdin"] for c in stub_calls)
    assert cloud.mongo.users["sacred-writer"]["pwd"] == passwords["-writer"]
    assert cloud.mongo.users["omniboard"]["pwd"] == passwords["-reader"]
    # it did reach the cluster - through stdin, with a private kubeconfig
    applied = [c for c in stub_calls if c["argv"][:1] == ["apply"]]
    assert applied and base64.b64encode(password.encode()).decode() in applied[0]["stdin"]
    assert {c["kubeconfig_mode"] for c in stub_calls} == {"0o600"}
    assert any(a[0].endswith("kubectl") for a in argvs) and any(a[0].endswith("helm") for a in argvs)
    assert not list(private_tmp.iterdir())  # the kubeconfigs (with a token) were removed
