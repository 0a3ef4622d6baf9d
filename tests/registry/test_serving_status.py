"""Deploys that tell the truth: deploy-vertex.py reads what a running `edge.py serve` reports in
serving-status.json (here a stand-in written by a thread), waits for it, and fails (setting the
endpoint back) when the server could not load the new version."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.registry.conftest import train
from vertex_edge.fsutil import atomic_write_json
from vertex_edge.serving_status import (
    STATUS_FILE,
    ServingStatus,
    judge_status,
    read_status,
    wait_for_version,
)

REG = Path(".edge/registry/fashion-mnist")
NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


def write_status(root: Path, **fields: object) -> None:
    root.mkdir(parents=True, exist_ok=True)
    data = {"pid": 4242, "url": "http://127.0.0.1:8080", "serving_version": "1", "target_version": "1",
            "error": None, "at": NOW.isoformat(), **fields}  # fmt: skip
    atomic_write_json(root / STATUS_FILE, data)  # as the server does: a reader never sees half a file


def status(**fields: object) -> ServingStatus:
    base = {"pid": 1, "url": "u", "serving_version": "1", "target_version": "1", "error": None, "at": NOW}
    return ServingStatus(**{**base, **fields})  # type: ignore[arg-type]


# ---------------------------------------------------------------- the reader


def test_no_file_a_corrupt_file_or_a_dead_pid_is_no_server(tmp_path: Path) -> None:
    assert read_status(tmp_path) is None
    (tmp_path / STATUS_FILE).write_text("{not json")
    assert read_status(tmp_path) is None
    (tmp_path / STATUS_FILE).write_text('["a list"]')
    assert read_status(tmp_path) is None
    write_status(tmp_path, pid="abc")
    assert read_status(tmp_path) is None
    write_status(tmp_path, pid=4242)
    assert read_status(tmp_path, alive=lambda pid: False) is None
    got = read_status(tmp_path, alive=lambda pid: pid == 4242)
    assert got is not None and got.serving_version == "1" and got.at == NOW and got.url.endswith(":8080")


def test_the_reader_tolerates_odd_values(tmp_path: Path) -> None:
    write_status(tmp_path, serving_version=3, target_version="", error="", at="yesterday")
    got = read_status(tmp_path, alive=lambda pid: True)
    assert got is not None
    assert (got.serving_version, got.target_version, got.error, got.at) == ("3", None, None, None)


def test_judging_a_status() -> None:
    since = NOW - timedelta(seconds=1)
    assert judge_status(None, "2", since=since).kind == "no-server"  # type: ignore[union-attr]
    assert judge_status(status(target_version=None), "2", since=since).kind == "not-following"  # type: ignore[union-attr]
    assert judge_status(status(serving_version="1", target_version="2"), "2", since=since) is None  # still loading
    assert judge_status(status(serving_version="2", target_version="2"), "2", since=since).kind == "serving"  # type: ignore[union-attr]
    failed = judge_status(status(target_version="2", error="corrupt"), "2", since=since)
    assert failed is not None and failed.kind == "failed" and not failed.ok
    assert "could not load version 2 and still serves version 1: corrupt" in failed.text()
    # an old failure says nothing about a deployment made after it
    assert judge_status(status(target_version="2", error="old", at=NOW - timedelta(minutes=5)), "2", since=since) is None


def test_waiting_is_bounded() -> None:
    clock = iter(float(i) for i in range(100))
    slept: list[float] = []
    outcome = wait_for_version(
        Path("."), "2", since=NOW, timeout_s=3, read=lambda root: status(target_version="2"),
        clock=lambda: next(clock), sleep=slept.append,
    )  # fmt: skip
    assert outcome.kind == "timeout" and not outcome.ok and len(slept) == 2  # clock 0 (deadline 3), 1, 2, 3
    assert "has not reported serving version 2 yet" in outcome.text()


# ---------------------------------------------------------------- deploy-vertex.py with a stand-in server


class StandIn:
    """A stand-in for `edge.py serve --follow`: each time endpoint.json changes, it reports the new
    version as served - or, for versions in ``broken``, keeps the old one and reports the error."""

    def __init__(self, root: Path, broken: set[str]) -> None:
        self.root, self.broken = root, broken
        self.stop = threading.Event()
        self.serving: str | None = None

    def run(self) -> None:
        seen = None
        while not self.stop.wait(0.05):
            try:
                data = json.loads((self.root / "endpoint.json").read_text())
            except (OSError, ValueError):
                continue
            target = max(data["traffic"], key=lambda v: data["traffic"][v]) if data["traffic"] else None
            if target == seen:
                continue
            seen = target
            error = None
            if target in self.broken:
                error = f"cannot load version {target}: model.onnx is not a valid ONNX model"
            else:
                self.serving = target
            write_status(self.root, pid=os.getpid(), serving_version=self.serving,
                         target_version=target, error=error, at=datetime.now(UTC).isoformat())  # fmt: skip


@pytest.fixture
def server(deploy_project: Path, deploy_cli) -> Iterator[StandIn]:
    """Version 1 deployed, then the stand-in server started on it."""
    assert deploy_cli()[0] == 0
    stand_in = StandIn(deploy_project / REG, broken=set())
    thread = threading.Thread(target=stand_in.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while read_status(deploy_project / REG) is None:
        assert time.monotonic() < deadline, "the stand-in did not start"
        time.sleep(0.05)
    yield stand_in
    stand_in.stop.set()
    thread.join(5)


def test_without_a_server_deploy_says_who_will_serve(deploy_project: Path, deploy_cli) -> None:
    code, out, err = deploy_cli()
    assert code == 0, err
    assert "no server is following this endpoint; 'python edge.py serve' will serve version 1" in out
    write_status(deploy_project / REG, pid=2**22 + 12345)  # a pid that is not running
    train(deploy_project, version="v2", accuracy=0.95, bias_class=3)
    code, out, _ = deploy_cli()
    assert code == 0 and "'python edge.py serve' will serve version 2" in out


def test_deploy_waits_until_the_server_serves_the_new_version(deploy_project: Path, deploy_cli, edge_cli, server: StandIn) -> None:
    train(deploy_project, version="v2", accuracy=0.95, bias_class=3)
    code, out, err = deploy_cli()
    assert code == 0, err
    assert "now serves version 2" in out and "http://127.0.0.1:8080" in out
    code, out, _ = edge_cli("endpoint", "describe")
    assert code == 0 and "serving: the server (pid" in out and "serves version 2" in out
    code, out, _ = deploy_cli("--rollback")
    assert code == 0 and "now serves version 1" in out


def test_a_failed_reload_fails_the_deploy_and_sets_the_endpoint_back(
    deploy_project: Path, deploy_cli, edge_cli, server: StandIn
) -> None:
    server.broken.add("2")
    train(deploy_project, version="v2", accuracy=0.95, bias_class=3)
    code, out, err = deploy_cli()
    assert code == 1
    assert "could not load version 2 and still serves version 1: cannot load version 2" in err
    assert "fashion-mnist-endpoint was set back to version 1, which is what it serves" in err
    endpoint = json.loads((deploy_project / REG / "endpoint.json").read_text())
    assert endpoint["traffic"] == {"1": 100}
    assert endpoint["history"][-1]["action"] == "rollback"
    assert endpoint["history"][-1]["note"] == "the server could not load version 2"
    code, out, _ = edge_cli("endpoint", "describe", "--json")
    data = json.loads(out)
    assert data["traffic_version"] == data["serving_version"] == data["server"]["serving_version"] == "1"
    assert data["in_sync"] is True


def test_a_server_that_does_not_answer_in_time_fails_the_deploy(deploy_project: Path, deploy_cli) -> None:
    write_status(deploy_project / REG, pid=os.getpid(), serving_version=None, target_version="0")
    code, _, err = deploy_cli("--wait", "0.3")
    assert code == 1 and "has not reported serving version 1 yet" in err and "--wait" in err
