"""Where runs go (file / MongoDB / off), and the MongoDB path's wiring, tested honestly:
mongomock stands in for the driver here; `test_live_mongo` runs against a real server only
when EDGE_TEST_MONGODB_URL is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vertex_edge.errors import TrackingError
from vertex_edge.tracking.runs import MongoExperimentStore
from vertex_edge.tracking.target import TrackingTarget, connect_mongo, make_observers, resolve_tracking


def _resolve(env: dict[str, str], **kw) -> TrackingTarget:  # noqa: ANN003
    base = {"enabled": True, "mongodb_url": None, "mongodb_db": "sacred", "file_store": Path("/s/experiments")}
    base.update(kw)
    return resolve_tracking(env=env, **base)


def test_default_is_file_store() -> None:
    assert _resolve({}) == TrackingTarget("file", path=Path("/s/experiments"))


def test_offline_switches() -> None:
    assert _resolve({"EDGE_OFFLINE": "1"}).kind == "off"
    assert _resolve({}, offline=True).kind == "off"
    assert _resolve({}, enabled=False).kind == "off"


def test_env_url_wins_over_config() -> None:
    target = _resolve({"EDGE_MONGODB_URL": "mongodb://u:pw@env:1"}, mongodb_url="mongodb://cfg:2")
    assert target.kind == "mongo" and target.url == "mongodb://u:pw@env:1"
    assert "pw" not in target.describe()


def test_redact_url() -> None:
    from vertex_edge.redact import redact_url

    assert redact_url("mongodb://user:secret@host:27017/db") == "mongodb://user:***@host:27017/db"
    assert redact_url("mongodb://host:27017") == "mongodb://host:27017"


def test_unreachable_mongo_fails_fast_without_password() -> None:
    target = TrackingTarget("mongo", url="mongodb://user:secret@127.0.0.1:9", db="sacred")
    with pytest.raises(TrackingError) as err:
        connect_mongo(target, timeout_ms=200)
    assert "not reachable" in err.value.message and "secret" not in err.value.message
    assert "EDGE_OFFLINE" in (err.value.hint or "")


def test_mongo_observer_wiring_with_mongomock(monkeypatch: pytest.MonkeyPatch) -> None:
    import mongomock
    import mongomock.gridfs
    import pymongo
    from sacred import Experiment

    mongomock.gridfs.enable_gridfs_integration()
    monkeypatch.setattr(pymongo, "MongoClient", mongomock.MongoClient)  # the driver, not the observer, is faked
    target = TrackingTarget("mongo", url="mongodb://db.test:27017", db="sacred")
    client = connect_mongo(target)
    observers = make_observers(target, mongo_client=client)
    ex = Experiment("wiring", save_git_info=False)
    ex.observers.extend(observers)
    ex.add_config({"epochs": 3, "batch_size": 8})

    @ex.main
    def run(_run):  # noqa: ANN001, ANN202
        _run.info["data_version"] = "abc123"
        _run.info["test_metrics"] = {"accuracy": 0.5}
        _run.log_scalar("loss", 1.0, 1)
        _run.log_scalar("loss", 0.5, 2)
        return 0.5

    ex.run()
    store = MongoExperimentStore(client, "sacred")
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0]["status"] == "COMPLETED"
    one = store.get_run(str(runs[0]["_id"]))
    assert one["metrics"]["loss"]["values"] == [1.0, 0.5]
    assert one["info"]["data_version"] == "abc123"


@pytest.mark.live_mongo
@pytest.mark.skipif(
    not os.environ.get("EDGE_TEST_MONGODB_URL"), reason="set EDGE_TEST_MONGODB_URL to test a real MongoDB"
)
def test_live_mongo() -> None:  # pragma: no cover - needs a server
    target = TrackingTarget("mongo", url=os.environ["EDGE_TEST_MONGODB_URL"], db="vertex_edge_test")
    client = connect_mongo(target)
    from sacred import Experiment

    ex = Experiment("live", save_git_info=False)
    ex.observers.extend(make_observers(target, mongo_client=client))
    ex.main(lambda: 1)
    run = ex.run()
    assert MongoExperimentStore(client, "vertex_edge_test").get_run(str(run._id))["status"] == "COMPLETED"


def test_tracking_environment_local_is_plain_copy() -> None:
    from vertex_edge.config import EdgeConfig
    from vertex_edge.gcp.sacred import tracking_environment

    env = {"A": "1"}
    with tracking_environment(EdgeConfig(), env) as out:
        assert out == env and out is not env


def test_tracking_environment_gcp_opens_and_closes_port_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from vertex_edge.config import parse_config
    from vertex_edge.gcp import clients as gcp_clients
    from vertex_edge.gcp import sacred
    from vertex_edge.gcp.sacred import tracking_environment

    events: list[str] = []

    @contextlib.contextmanager
    def fake_forward(config, clients):  # noqa: ANN001, ANN202
        events.append(f"open {clients}")
        yield "mongodb://sacred:pw@127.0.0.1:40000/?authSource=admin"
        events.append("closed")

    monkeypatch.setattr(sacred, "mongo_url_via_port_forward", fake_forward)
    monkeypatch.setattr(gcp_clients.GcpClients, "connect", classmethod(lambda cls, p, r: f"clients({p},{r})"))
    config = parse_config({"target": "gcp", "gcp": {"project": "my-project-1", "region": "europe-west4"}})
    with tracking_environment(config, {}) as env:
        assert env["EDGE_MONGODB_URL"].startswith("mongodb://sacred:")
        assert events == ["open clients(my-project-1,europe-west4)"]
    assert events[-1] == "closed"
    with tracking_environment(config, {"EDGE_OFFLINE": "1"}) as env:  # offline: no port-forward
        assert "EDGE_MONGODB_URL" not in env
    assert len(events) == 2
