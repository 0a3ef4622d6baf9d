"""Contract tests: the real server process, non-default AIP_* values, a free port, over HTTP."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.serving.conftest import REPO, VERTEX_HEALTH, VERTEX_PREDICT, RunningServer
from tests.serving.tiny_model import LABELS, bar_image, write_model_dir

pytestmark = pytest.mark.slow


def _png(image: np.ndarray, scale: int = 1, invert: bool = False, fmt: str = "PNG") -> str:
    arr = image.astype(np.uint8)
    if invert:
        arr = 255 - arr
    img = Image.fromarray(arr, mode="L").resize((28 * scale + 3, 28 * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def _post(server: RunningServer, body, **kw) -> httpx.Response:
    if isinstance(body, (bytes, str)) or hasattr(body, "__next__"):
        return httpx.post(server.predict_url, content=body, timeout=30, **kw)
    return httpx.post(server.predict_url, json=body, timeout=30, **kw)


def test_health_on_the_vertex_route(vertex_server: RunningServer) -> None:
    assert vertex_server.health_route == VERTEX_HEALTH
    r = httpx.get(vertex_server.health_url)
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["model_version"] == "20261122T110000Z-aaaaaaaa"
    assert httpx.get(vertex_server.base_url + "/health").status_code == 404
    assert httpx.post(vertex_server.base_url + "/predict", json={"instances": [[0] * 784]}).status_code == 404


def test_predict_nested_flat_and_b64(vertex_server: RunningServer) -> None:
    assert vertex_server.predict_route == VERTEX_PREDICT
    instances = [
        bar_image(9).tolist(),
        bar_image(1).reshape(-1).tolist(),
        {"b64": _png(bar_image(3), scale=5, invert=True)},  # dark on light, any size
        {"b64": _png(bar_image(7), scale=3, fmt="JPEG")},  # light on dark JPEG
    ]
    r = _post(vertex_server, {"instances": instances, "parameters": {}})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["model_version"] == "20261122T110000Z-aaaaaaaa"
    assert [p["class_id"] for p in body["predictions"]][:2] == [9, 1]
    assert [p["label"] for p in body["predictions"]][:2] == ["Ankle boot", "Trouser"]
    for p in body["predictions"]:
        assert set(p) == {"label", "class_id", "probabilities", "request_id"}  # no monitor output: no "ood"
        assert len(p["probabilities"]) == 10
        assert abs(sum(p["probabilities"]) - 1) < 1e-4
        assert p["label"] == LABELS[p["class_id"]]
        assert p["class_id"] == int(np.argmax(p["probabilities"]))


def test_labels_come_from_the_model_card(tmp_path: Path, server_factory) -> None:
    labels = [f"kind-{i}" for i in range(10)]
    folder = write_model_dir(tmp_path / "m", labels=labels, version="custom-1")
    server = server_factory({"AIP_STORAGE_URI": str(folder)})
    r = _post(server, {"instances": [bar_image(4).tolist()]})
    assert r.json()["predictions"][0]["label"] == "kind-4"
    assert r.json()["model_version"] == "custom-1"


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["code"] == status and err["message"]
    return err


OK = bar_image(2).tolist()


@pytest.mark.parametrize(
    ("instances", "index", "text"),
    [
        ([OK, [[0] * 28] * 27], 1, "27 rows; expected 28 rows of 28"),
        ([OK, OK, [0] * 100], 2, "flat list has 100 values; expected 784"),
        ([[0] * 783 + [256]], 0, "position 783 is 256, out of range; expected 0..255"),
        ([OK, [0] * 783 + [-1]], 1, "out of range"),
        ([[0] * 783 + ["x"]], 0, "position 783 is a string ('x'); expected a number"),
        ([[0] * 783 + [None]], 0, "is null; expected a number"),
        ([OK, {"b64": "%%%not base64%%%"}], 1, "not valid base64"),
        ([OK, OK, {"b64": _png(bar_image(1), scale=9)[:200]}], 2, "corrupt or truncated"),
        ([{"b64": base64.b64encode(b"plain text").decode()}], 0, "not an image that can be read"),
        ([{"image": "x"}], 0, 'expected {"b64"'),
        ([7], 0, "got the number 7"),
    ],
)
def test_bad_instances_name_the_index_and_the_problem(vertex_server, instances, index, text) -> None:
    err = _error(_post(vertex_server, {"instances": instances}), 400)
    assert err["message"].startswith(f"instance {index}: ")
    assert text in err["message"]
    assert err["details"][0]["instance"] == index and text in err["details"][0]["message"]


def test_every_bad_instance_is_listed(vertex_server) -> None:
    err = _error(_post(vertex_server, {"instances": [OK, [1], OK, [2]]}), 400)
    assert [d["instance"] for d in err["details"]] == [1, 3]
    assert "2 of 4 instances are invalid" in err["message"]


def test_nan_is_not_json(vertex_server) -> None:
    body = '{"instances": [[' + ",".join(["0"] * 783) + ',NaN]]}'
    err = _error(_post(vertex_server, body, headers={"content-type": "application/json"}), 400)
    assert "not valid JSON" in err["message"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"instances": []}, "'instances' is empty; expected 1 to 100"),
        ({"instances": [OK] * 101}, "'instances' has 101 instances; at most 100"),
        ({}, "'instances' is missing"),
        ({"instances": OK[0][0]}, "'instances' is a number; expected a list"),
        ({"instances": [OK], "parameters": [1]}, "'parameters' is a list; expected an object"),
        ({"instances": [OK], "extra": 1}, "unknown key(s) 'extra'"),
        ([OK], "the body is a list; expected a JSON object"),
    ],
)
def test_bad_requests(vertex_server, body, text) -> None:
    err = _error(_post(vertex_server, body), 400)
    assert text in err["message"]


def test_not_json(vertex_server) -> None:
    err = _error(_post(vertex_server, b"instances=1", headers={"content-type": "application/json"}), 400)
    assert "not valid JSON" in err["message"]
    err = _error(_post(vertex_server, b"", headers={"content-type": "application/json"}), 400)
    assert "empty" in err["message"]
    err = _error(_post(vertex_server, b'{"instances": [1]}', headers={"content-type": "text/plain"}), 415)
    assert "expected application/json" in err["message"]
    err = _error(_post(vertex_server, b"\xff\xfe\x00", headers={"content-type": "application/json"}), 400)


def test_body_over_one_and_a_half_megabytes(vertex_server) -> None:
    big = b'{"instances": [' + b" " * 1_600_000 + b"]}"
    err = _error(_post(vertex_server, big, headers={"content-type": "application/json"}), 413)
    assert "limit is 1,572,864 bytes" in err["message"]

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"instances": ['
        for _ in range(20):
            yield b" " * 100_000

    err = _error(_post(vertex_server, chunks(), headers={"content-type": "application/json"}), 413)
    # just under the limit is accepted
    ok = json.dumps({"instances": [OK]}).encode()
    ok = ok[:-1] + b" " * (1_572_864 - len(ok)) + b"}"
    assert _post(vertex_server, ok, headers={"content-type": "application/json"}).status_code == 200


def test_concurrent_requests_all_succeed(vertex_server) -> None:
    def one(i: int) -> int:
        r = httpx.post(vertex_server.predict_url, json={"instances": [bar_image(i % 10).tolist()]}, timeout=30)
        assert r.status_code == 200
        return r.json()["predictions"][0]["class_id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, range(64)))
    assert got == [i % 10 for i in range(64)]


def test_structured_request_logs_without_payloads(vertex_server) -> None:
    secret = _png(bar_image(6), scale=2)
    assert _post(vertex_server, {"instances": [{"b64": secret}, OK]}).status_code == 200
    lines = [json.loads(line) for line in vertex_server.logs().splitlines() if line.startswith("{")]
    access = [e for e in lines if e.get("logger") == "vertex_edge.serving.access"]
    assert access, vertex_server.logs()
    last = [e for e in access if e["route"] == VERTEX_PREDICT and e["instances"] == 2][-1]
    assert last["method"] == "POST" and last["status"] == 200 and last["latency_ms"] > 0
    assert last["severity"] == "INFO"
    assert secret[:40] not in vertex_server.logs()
    assert any(e["route"] == VERTEX_HEALTH and e["status"] == 200 for e in access)


def test_server_process_never_imports_tensorflow(vertex_server) -> None:
    maps = Path(f"/proc/{vertex_server.process.pid}/maps")
    if maps.exists():
        assert "tensorflow" not in maps.read_text().lower()
    code = (
        "import sys, os; os.environ['AIP_STORAGE_URI'] = '/nowhere';"
        "import vertex_edge.serving.__main__, vertex_edge.serving.app as a, vertex_edge.serving.reload, "
        "vertex_edge.registry;"
        "a.create_app();"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'dvc', 'sacred'));"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unloadable_model_exits_non_zero_with_the_reason(tmp_path: Path, server_factory) -> None:
    folder = write_model_dir(tmp_path / "m")
    (folder / "model.onnx").write_bytes(b"not onnx")
    server = server_factory({"AIP_STORAGE_URI": str(folder)}, wait_ready=False)
    assert server.process.wait(timeout=60) == 1
    assert "does not match" in server.logs() or "sha256" in server.logs()


def test_invalid_settings_exit_2(tmp_path: Path, server_factory) -> None:
    server = server_factory({"AIP_STORAGE_URI": str(tmp_path), "AIP_PREDICT_ROUTE": "no-slash"}, wait_ready=False)
    assert server.process.wait(timeout=60) == 2
    assert "expected a path starting with '/'" in server.logs()


def test_booleans_are_not_pixel_values(vertex_server) -> None:
    err = _error(_post(vertex_server, {"instances": [OK, [0] * 783 + [True]], "parameters": {"x": False}}), 400)
    assert err["message"].startswith("instance 1: value at position 783 is a boolean (true)")
