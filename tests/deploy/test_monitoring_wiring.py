"""Where monitoring data goes on the local target, as the commands wire it: `edge.py serve` starts
the server with edge.yaml's capture settings (records under the storage root), `edge.py webapp`
gives the web app its feedback location, and `edge.py monitor` compares with the reference
profile of the version the endpoint serves (the registry's model folder), end to end."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.monitoring.conftest import capture_images
from tests.monitoring.helpers import heldout
from vertex_edge.cli.serve import server_environ
from vertex_edge.cli.webapp import webapp_environ
from vertex_edge.config import EdgeConfig, load_config, parse_config
from vertex_edge.monitoring.profile import PROFILE_FILE
from vertex_edge.monitoring.settings import MonitoringConfig, MonitoringPaths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_server_environment_comes_from_edge_yaml_under_the_environment(tmp_path: Path) -> None:
    records = str(tmp_path / ".edge/monitoring/fashion-mnist/records")
    assert server_environ(MonitoringConfig(), records, {"PATH": "/bin"}) == {
        "EDGE_CAPTURE_URI": records, "EDGE_CAPTURE_SAMPLE_RATE": "1", "PATH": "/bin"}  # fmt: skip
    mine = server_environ(MonitoringConfig(sample_rate=0.5), records, {"EDGE_CAPTURE_SAMPLE_RATE": "0.1"})
    assert mine["EDGE_CAPTURE_SAMPLE_RATE"] == "0.1"  # an exported variable wins
    assert server_environ(MonitoringConfig(capture=False), records, {}) == {}


def test_edge_py_serve_starts_the_server_with_the_capture_settings(
    deploy_project: Path, deploy_cli, edge_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vertex_edge.cli import serve as serve_cli
    from vertex_edge.serving import __main__ as server_main

    assert deploy_cli()[0] == 0
    seen: dict = {}
    real = serve_cli.ServerSettings.from_env

    def from_env(env, **overrides):  # noqa: ANN001, ANN202
        seen["env"] = dict(env)
        return real(env, **overrides)

    monkeypatch.setattr(serve_cli.ServerSettings, "from_env", staticmethod(from_env))
    monkeypatch.setattr(server_main, "serve", lambda settings: seen.setdefault("settings", settings) and 0)
    monkeypatch.delenv("EDGE_CAPTURE_URI", raising=False)
    code, out, err = edge_cli("serve", "--port", str(free_port()))
    assert code == 0, err
    records = deploy_project / ".edge" / "monitoring" / "fashion-mnist" / "records"
    assert seen["env"]["EDGE_CAPTURE_URI"] == str(records) and seen["env"]["EDGE_CAPTURE_SAMPLE_RATE"] == "1"
    assert f"capture: a record per prediction (sample rate 1, never the image) in {records}" in out.replace("\n", "")
    assert records == Path(MonitoringPaths.for_config(load_config(deploy_project / "edge.yaml"), deploy_project).records)


def test_edge_py_webapp_gives_the_web_app_its_feedback_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = EdgeConfig()
    assert webapp_environ(local, tmp_path, {})["EDGE_FEEDBACK_URI"] == str(tmp_path / ".edge/monitoring/fashion-mnist/feedback")
    gcp = parse_config({"target": "gcp", "gcp": {"project": "my-proj-123"}})
    assert webapp_environ(gcp, tmp_path, {})["EDGE_FEEDBACK_URI"] == "gs://my-proj-123-edge/monitoring/fashion-mnist/feedback"
    assert webapp_environ(local, tmp_path, {"EDGE_FEEDBACK_URI": "/elsewhere"})["EDGE_FEEDBACK_URI"] == "/elsewhere"

    from vertex_edge.cli.edge import main
    from vertex_edge.webapp import server

    monkeypatch.setenv("EDGE_FEEDBACK_URI", "restored after the test")
    monkeypatch.delenv("EDGE_FEEDBACK_URI")
    started: list = []
    monkeypatch.setattr(server, "serve", started.append)
    monkeypatch.setattr(server, "endpoint_listening", lambda url: True)
    (tmp_path / "edge.yaml").write_text("version: 1\ntarget: local\n")
    assert main(["--repo", str(tmp_path), "webapp", "--port", str(free_port())]) == 0
    assert started and os.environ["EDGE_FEEDBACK_URI"] == str(tmp_path / ".edge/monitoring/fashion-mnist/feedback")


def test_monitor_compares_with_the_profile_of_the_version_the_endpoint_serves(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vertex_edge.cli.deploy import main as deploy
    from vertex_edge.cli.edge import main as edge

    assert deploy(["--repo", str(project), "--wait", "0"]) == 0, capsys.readouterr().err
    config = load_config(project / "edge.yaml")
    version_dir = config.storage_root(project) / "registry" / "fashion-mnist" / "versions" / "1"
    assert (version_dir / PROFILE_FILE).is_file()  # registered with the model
    shutil.rmtree(project / "models" / "fashion-mnist")  # the pipeline's folder plays no part
    card = json.loads((version_dir / "model_card.json").read_text())
    images, _ = heldout(300, seed=31)
    capture_images(version_dir, MonitoringPaths.for_config(config, project).records, images, version=card["version"])
    out = tmp_path / "report"
    capsys.readouterr()
    assert edge(["--repo", str(project), "monitor", "--last", "300", "--out", str(out)]) == 0
    assert "healthy" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_dir"] == str(version_dir) and summary["model_version"] == card["version"]
    assert summary["records"] == 300
