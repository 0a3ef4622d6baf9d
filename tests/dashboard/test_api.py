"""The experiments UI's JSON API and pages, over a store holding one run of each kind: completed,
better, below the gate, failed (NaN loss), running, dead, corrupt run.json, half-written metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.dashboard.conftest import add_version
from tests.dashboard.runs_fixture import write_run
from vertex_edge.dashboard.app import LOOPBACK_HOSTS, create_app
from vertex_edge.dashboard.service import RunsService, StoreInfo
from vertex_edge.dashboard.table import changed_keys, param_keys
from vertex_edge.tracking.runs import FileExperimentStore


def by_id(client: TestClient) -> dict[str, dict]:
    body = client.get("/api/runs").json()
    return {r["id"]: r for r in body["runs"]}


def test_runs_api_lists_every_run_with_its_displayed_status(client: TestClient) -> None:
    response = client.get("/api/runs")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert [r["id"] for r in body["runs"]] == [str(i) for i in range(1, 9)]
    status = {r["id"]: r["status"] for r in body["runs"]}
    assert status == {"1": "COMPLETED", "2": "COMPLETED", "3": "COMPLETED", "4": "FAILED", "5": "RUNNING",
                      "6": "DEAD", "7": "CORRUPT", "8": "COMPLETED"}  # fmt: skip
    assert body["runs"][5]["sacred_status"] == "RUNNING"  # Sacred says RUNNING; the reader says DEAD
    assert "run.json is unreadable" in body["runs"][6]["problems"][0]
    assert "metrics.json is unreadable" in body["runs"][7]["problems"][0]


def test_every_param_is_flattened_and_the_changed_ones_are_named(client: TestClient) -> None:
    body = client.get("/api/runs").json()
    assert {"augment.flip", "augment.shift", "model.filters", "learning_rate", "seed"} <= set(body["param_keys"])
    assert body["changed_keys"] == ["augment.shift", "batch_size", "epochs", "learning_rate"]
    run2 = body["runs"][1]
    assert run2["params"]["augment.shift"] == 2 and run2["params"]["model.filters"] == [24, 64, 128]


def test_columns_of_a_completed_run(client: TestClient) -> None:
    run = by_id(client)["2"]
    assert run["dvc_experiment"] == "lr-1e-3-shift2" and "dvc_baseline" not in run  # on the run's own page
    assert client.get("/api/runs/2").json()["dvc_baseline"].startswith("6ddd26b")
    assert run["commit"].startswith("6ddd26b") and run["dirty"] is False
    assert run["data_version"].startswith("0f3c2a9d") and run["host"] == "laptop-ds"
    assert run["start"] == "2026-11-20T11:00:00Z" and run["duration_s"] == 125.0
    assert run["test_accuracy"] == pytest.approx(0.9329) and run["test_loss"] == pytest.approx(0.1671)
    assert run["gate_passed"] is True and client.get("/api/runs/2").json()["gate_min_accuracy"] == 0.9
    assert run["registry"] == [{"version": "2", "traffic": 100, "gate_passed": True, "gate_forced": False}]
    assert by_id(client)["1"]["registry"][0] == {
        "version": "1",
        "traffic": 0,
        "gate_passed": True,
        "gate_forced": False,
    }
    below = by_id(client)["3"]
    assert below["gate_passed"] is False and below["dirty"] is True
    assert [link["version"] for link in below["registry"]] == ["3"]  # joined by run id: v3 has no sha256


def test_a_running_run_shows_its_latest_epoch(client: TestClient) -> None:
    run = by_id(client)["5"]
    assert run["status"] == "RUNNING" and run["epoch"] == 3 and run["epochs"] == 8
    assert set(client.get("/api/runs/5").json()["latest"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert run["test_accuracy"] is None and run["duration_s"] >= 120 and "stop" not in run


def test_nan_in_a_metric_becomes_null_not_a_broken_response(client: TestClient) -> None:
    response = client.get("/api/runs/4")
    assert response.status_code == 200

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON (browsers refuse it)")

    body = json.loads(response.text, parse_constant=no_constants)
    assert body["series"]["loss"]["values"][1] is None and body["status"] == "FAILED"
    assert "ValueError: loss is NaN" in body["fail_trace"]


def test_run_detail_has_series_artifacts_evaluation_and_reproduce_commands(client: TestClient) -> None:
    body = client.get("/api/runs/2").json()
    assert body["series"]["val_accuracy"]["steps"] == [1, 2, 3, 4]
    assert body["confusion_png"] == "confusion_matrix.png"
    assert body["artifact_roles"] == {"train_history.csv": "history", "model_card.json": "model_card",
                                      "confusion_matrix.png": "confusion_png", "evaluate.json": "evaluation"}  # fmt: skip
    assert set(body["per_class"]) >= {"T-shirt/top", "Ankle boot"}
    commands = [s["command"] for s in body["reproduce"]]
    assert commands[0] == "git checkout 6ddd26b0c0ffee0123456789abcdef0123456789"
    assert "dvc exp apply lr-1e-3-shift2" in commands[1]
    assert "-S train.augment.shift=2" in commands[-1] and "-S 'train.model.filters=[24,64,128]'" in commands[-1]
    assert "epoch 4/4" in body["captured_out"]


def test_artifacts_are_served_images_inline_others_as_downloads(client: TestClient) -> None:
    png = client.get("/api/runs/2/artifacts/confusion_matrix.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert png.headers["content-disposition"].startswith("inline")
    csv = client.get("/api/runs/2/artifacts/train_history.csv")
    assert csv.text.startswith("epoch,loss") and csv.headers["content-disposition"].startswith("attachment")
    for url in ("/api/runs/2/artifacts/run.json", "/api/runs/2/artifacts/..%2Frun.json", "/api/runs/99/artifacts/x.png",
                "/api/runs/5/artifacts/confusion_matrix.png"):  # fmt: skip
        assert client.get(url).status_code == 404, url


def test_compare_gives_param_differences_and_metric_deltas(client: TestClient) -> None:
    body = client.get("/api/compare", params={"ids": "1,2,3"}).json()
    assert body["ids"] == ["1", "2", "3"] and body["changed_keys"] == [
        "augment.shift",
        "batch_size",
        "epochs",
        "learning_rate",
    ]
    lr = next(p for p in body["params"] if p["key"] == "learning_rate")
    assert lr == {"key": "learning_rate", "values": [0.002, 0.001, 0.002], "differs": True}
    assert next(p for p in body["params"] if p["key"] == "seed")["differs"] is False
    acc = next(m for m in body["metrics"] if m["key"] == "test_accuracy")
    assert acc["deltas"][0] == 0 and acc["deltas"][1] == pytest.approx(0.0099) and acc["deltas"][2] < 0
    assert [len(r["series"]) > 0 for r in body["runs"]] == [True, True, True]
    same = client.get("/api/compare?ids=1&ids=2").json()
    assert same["ids"] == ["1", "2"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("ids=1", 400),
        ("ids=", 400),
        ("", 400),
        ("ids=1,99", 404),
        ("ids=1,%3Cb%3E", 400),
        ("ids=" + ",".join(map(str, range(1, 20))), 400),
    ],
)
def test_compare_refuses_bad_selections(client: TestClient, query: str, status: int) -> None:
    response = client.get("/api/compare?" + query)
    assert response.status_code == status
    assert set(response.json()) == {"error", "message", "request_id"}


def test_every_page_renders_for_every_kind_of_run(client: TestClient) -> None:
    for path in ["/", "/compare?ids=1,2,3", "/compare?ids=4,5,6,7,8", *(f"/runs/{i}" for i in range(1, 9))]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "text/html" in response.headers["content-type"]
        assert "content-security-policy" in response.headers
    run7 = client.get("/runs/7").text
    assert "could not be read" in run7 and "run.json is unreadable" in run7
    assert "stopped without saying so" in client.get("/runs/6").text
    assert 'data-status="RUNNING"' in client.get("/runs/5").text


def test_unknown_runs_and_writes_are_refused_cleanly(client: TestClient) -> None:
    assert client.get("/runs/99").status_code == 404
    assert "there is no run 99" in client.get("/runs/99").text
    assert client.get("/api/runs/99").json()["error"] == "not_found"
    assert client.get("/api/runs/a%20b").status_code in (400, 404)
    for method in ("post", "put", "delete"):
        assert getattr(client, method)("/api/runs").status_code == 405


def test_foreign_host_headers_are_refused(client: TestClient) -> None:
    assert client.get("/api/runs", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/api/runs", headers={"host": "127.0.0.1:9000"}).status_code == 200


def test_odd_run_documents_never_give_a_5xx(store_dir: Path, client: TestClient) -> None:
    odd = {
        "20": {"run.json": "[1, 2]"},
        "21": {"run.json": json.dumps({"status": "RUNNING", "start_time": "yesterday"}), "info.json": "[]"},
        "22": {
            "run.json": json.dumps({"status": "COMPLETED", "artifacts": "nope"}),
            "metrics.json": json.dumps({"loss": 3}),
        },
        "23": {"run.json": b"\xff\xfe\x00garbage", "config.json": "null"},
        "24": {
            "run.json": json.dumps({"status": "WEIRD", "heartbeat": 12}),
            "config.json": json.dumps({"a": {"b": {"c": 1}}}),
        },
        "25": {},
    }
    for run_id, files in odd.items():
        folder = store_dir / run_id
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    runs = by_id(client)
    assert {runs[i]["status"] for i in odd} == {"CORRUPT", "DEAD", "COMPLETED"}
    assert runs["25"]["problems"] == ["run.json is missing", "config.json is missing"]
    assert runs["24"]["params"] == {"a.b.c": 1} and runs["24"]["status"] == "CORRUPT"
    for run_id in odd:
        assert client.get(f"/runs/{run_id}").status_code == 200, run_id
        assert client.get(f"/api/runs/{run_id}").status_code == 200, run_id
    assert client.get("/compare?ids=" + ",".join(odd)).status_code == 200


def test_an_empty_or_missing_store_is_an_empty_table(tmp_path: Path) -> None:
    service = RunsService(FileExperimentStore(tmp_path / "nothing"), StoreInfo("Sacred file store (none yet)", "local"))
    client = TestClient(create_app(service, allowed_hosts=["testserver", *LOOPBACK_HOSTS]))
    body = client.get("/api/runs").json()
    assert body["runs"] == [] and body["param_keys"] == [] and body["registry_note"] is None
    assert client.get("/").status_code == 200


def test_a_store_that_stops_answering_gives_503_not_a_traceback(service: RunsService) -> None:
    class Down:
        def list_runs(self) -> list:
            raise ConnectionRefusedError("connection refused")

        def get_run(self, run_id: str) -> None:
            raise ConnectionRefusedError("connection refused")

    service.store = Down()
    client = TestClient(create_app(service, allowed_hosts=["testserver"]), raise_server_exceptions=False)
    response = client.get("/api/runs")
    assert response.status_code == 503 and response.json()["error"] == "store_unavailable"
    page = client.get("/runs/1")
    assert page.status_code == 503 and "Traceback" not in page.text and "cannot be reached" in page.text


def test_a_run_that_finishes_is_read_again(store_dir: Path, client: TestClient) -> None:
    assert by_id(client)["5"]["status"] == "RUNNING"
    shutil.rmtree(store_dir / "5")
    write_run(store_dir, 5, experiment="running-exp")
    run = by_id(client)["5"]
    assert run["status"] == "COMPLETED" and run["test_accuracy"] is not None


def test_static_assets_are_served_by_the_app(client: TestClient) -> None:
    for path in ("/static/vendor/uplot/uPlot.iife.min.js", "/static/vendor/uplot/uPlot.min.css", "/static/runs.js",
                 "/static/dashboard.css", "/static-webapp/app.css", "/favicon.svg"):  # fmt: skip
        assert client.get(path).status_code == 200, path
    js = client.get("/static/runs.js")
    assert js.headers["content-type"].startswith("text/javascript") and js.headers["etag"]
    assert client.get("/static/runs.js", headers={"if-none-match": js.headers["etag"]}).status_code == 304
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../routes.py").status_code == 404
    html = client.get("/").text + client.get("/runs/2").text
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_the_cached_table_is_the_table_and_follows_the_registry(
    service: RunsService, client: TestClient, tmp_path: Path
) -> None:
    def timeless(rows: list[dict]) -> list[dict]:  # a running run's duration follows the clock
        return [{k: v for k, v in r.items() if k != "duration_s"} for r in rows]

    first = client.get("/api/runs").json()
    assert timeless(first["runs"]) == timeless(service.table()["runs"])
    assert timeless(client.get("/api/runs").json()["runs"]) == timeless(first["runs"])  # from the cached rows
    registry = service.lineage.registry  # type: ignore[attr-defined]
    add_version(registry, "4", run_id="8", sha256=f"{8:064x}")
    run8 = by_id(client)["8"]
    assert [link["version"] for link in run8["registry"]] == ["4"]


def test_changed_keys() -> None:
    maps = [
        param_keys(p) for p in ({"a": 1, "b": True, "c": [1]}, {"a": 1, "b": 1, "c": [1]}, {"a": 1, "c": [1], "d": 0})
    ]
    assert changed_keys(maps) == ["b", "d"]  # True is not 1; a key one run lacks differs
    assert changed_keys(maps[:1]) == [] and changed_keys([]) == []
