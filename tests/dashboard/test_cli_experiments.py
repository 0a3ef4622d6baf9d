"""``edge.py experiments list/show/compare/ui/dashboard`` on the local target, over the same
store the UI reads (one run of each kind) and a local registry."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.dashboard.conftest import make_registry
from tests.dashboard.runs_fixture import demo_store
from vertex_edge.cli.context import AppContext
from vertex_edge.cli.edge import main
from vertex_edge.cli.experiments import open_service
from vertex_edge.config import EdgeConfig, write_config
from vertex_edge.dashboard import server
from vertex_edge.dashboard.app import create_app


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("EDGE_MONGODB_URL", "EDGE_OFFLINE", "EDGE_EXPERIMENTS_DIR", "EDGE_UI_PORT", "EDGE_UI_HOST"):
        monkeypatch.delenv(var, raising=False)
    write_config(EdgeConfig(), tmp_path / "edge.yaml")
    demo_store(tmp_path / ".edge" / "experiments", now=datetime.now(UTC))
    make_registry(tmp_path / ".edge" / "registry")
    return tmp_path


def edge(repo: Path, *args: str) -> int:
    return main(["--repo", str(repo), "experiments", *args])


def test_list_shows_status_dead_and_the_params_that_differ(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edge(repo, "list") == 0
    out = capsys.readouterr().out
    assert "params that differ" in out and "learning_rate=0.001" in out and "augment.shift=2" in out
    assert "seed=42" not in out  # the same in every run
    lines = {
        line.split()[1]: line for line in out.splitlines() if line.strip()[:1] == "│" and line.split()[1].isdigit()
    }
    assert "DEAD" in lines["6"] and "RUNNING 3/8" in lines["5"] and "CORRUPT" in lines["7"] and "FAILED" in lines["4"]
    assert "v2 (100%)" in lines["2"] and "passed" in lines["2"] and "lr-1e-3-shift2" in lines["2"]
    assert "+dirty" in lines["3"] and "failed" in lines["3"]


def test_list_last_and_json(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edge(repo, "list", "--last", "2") == 0
    out = capsys.readouterr().out
    assert "epochs=6" not in out  # only runs 7 and 8 are listed: they have the same params
    assert "the listed runs have the same params" in out
    assert edge(repo, "list", "--json", "-n", "3") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["6", "7", "8"] and rows[0]["status"] == "DEAD"
    assert rows[2]["model_sha256"] == f"{8:064x}" and "fail_trace" in rows[0]  # every field


def test_show_prints_a_readable_summary(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edge(repo, "show", "2") == 0
    out = capsys.readouterr().out
    for expected in ("run 2", "COMPLETED", "lr-1e-3-shift2", "93.29 %", "passed", "v2 (100%)", "per epoch",
                     "reproduce", "git checkout 6ddd26b0c0ffee", "dvc exp run", "epoch 4/4", "evaluate.json"):  # fmt: skip
        assert expected in out, expected
    assert len(out.splitlines()) < 80
    assert edge(repo, "show", "2", "--json") == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["_id"] == "2" and raw["status"] == "COMPLETED" and "_problems" not in raw


def test_show_of_corrupt_and_unknown_runs(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edge(repo, "show", "7") == 0
    assert "could not read: run.json is unreadable" in capsys.readouterr().out
    assert edge(repo, "show", "42") == 2
    err = capsys.readouterr().err
    assert "no run with id '42'" in err and "Traceback" not in err


def test_compare_prints_deltas_and_param_differences(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edge(repo, "compare", "1", "2", "3") == 0
    out = capsys.readouterr().out
    assert "delta against run 1" in out and "(+0.0099)" in out and "(-0.0517)" in out
    assert "learning_rate" in out and "batch_size" in out and "seed" not in out
    assert "uncommitted changes" in out  # run 3 was dirty
    assert edge(repo, "compare", "1", "2", "--all") == 0
    assert "seed" in capsys.readouterr().out
    assert edge(repo, "compare", "1") == 2 and "give 2 to 12 run ids" in capsys.readouterr().err
    assert edge(repo, "compare", "1", "77") == 2 and "no run with id 77" in capsys.readouterr().err


def test_ui_refuses_a_port_in_use(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert edge(repo, "ui", "--port", str(port)) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port 0" in err


def test_ui_prints_the_url_and_serves_the_store(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: dict[str, object] = {}

    def fake_serve(service, host: str, port: int, **kwargs: object) -> None:  # noqa: ANN001
        started.update(service=service, host=host, port=port)

    monkeypatch.setattr(server, "serve", fake_serve)
    assert edge(repo, "ui", "--port", "0") == 0
    out = capsys.readouterr().out
    assert f"experiments UI: http://127.0.0.1:{started['port']}/" in out and "read-only" in out
    assert started["host"] == "127.0.0.1" and len(started["service"].table()["runs"]) == 8
    assert edge(repo, "dashboard") == 0  # the local target: the same UI
    assert "serving the experiments UI" in capsys.readouterr().out
    assert edge(repo, "ui", "--host", "0.0.0.0", "--port", "0") == 0
    assert "anyone who reaches this address" in capsys.readouterr().out


def test_ui_really_serves(repo: Path) -> None:
    """The real server in a thread, on a free port: the page and the API answer."""
    with open_service(AppContext.create(repo, None)) as service:
        port = server.resolve_port("127.0.0.1", 0)
        srv = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_config=None))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not srv.started and time.monotonic() < deadline:
                time.sleep(0.05)
            assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
            assert len(httpx.get(f"http://127.0.0.1:{port}/api/runs").json()["runs"]) == 8
            assert httpx.get(f"http://127.0.0.1:{port}/api/runs", headers={"host": "attacker.test"}).status_code == 400
        finally:
            srv.should_exit = True
            thread.join(timeout=10)


def test_helpers_of_the_server() -> None:
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1") and server.is_loopback("localhost")
    assert not server.is_loopback("0.0.0.0") and not server.is_loopback("10.1.2.3")
    assert server.url_for("0.0.0.0", 9000) == "http://127.0.0.1:9000/"
    assert server.url_for("::1", 9000) == "http://[::1]:9000/"
    assert server.allowed_hosts("10.1.2.3") == ["*"]
