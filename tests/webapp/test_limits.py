"""The web app's limits as a user meets them: the decoded-pixel budget (from the header, before
decoding; a JPEG at its reduced size), uploads beyond the admission limit (503 + Retry-After),
the request deadline (408 while uploading, 504 later), the endpoint's answer capped (502 naming
the limit), malformed forms (422); and the decode pool itself (cheapest first, a thread kept for
small images, jobs dropped past their deadline)."""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import time
import zlib

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.webapp.helpers import FakeClient, png_bytes, sample_bytes
from vertex_edge.webapp.app import create_app
from vertex_edge.webapp.client import HttpPredictionClient
from vertex_edge.webapp.limits import Admission, Busy, Deadline, DeadlineExceeded, WorkPool
from vertex_edge.webapp.settings import DEFAULT_IMAGE_PIXELS, WebappSettings


def upload(data: bytes, name: str = "photo.png") -> dict:
    return {"file": (name, data, "application/octet-stream")}


def header_only_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def app_client(fake: FakeClient, **settings: object) -> TestClient:
    return TestClient(create_app(WebappSettings(**settings), client=fake), raise_server_exceptions=False)


# --------------------------------------------------------------------------- the pixel budget


def test_an_image_over_the_pixel_budget_is_refused_from_its_header(fake: FakeClient) -> None:
    over = header_only_png(4097, 2048)  # 8,390,656 pixels: 2,048 over the default budget
    with app_client(fake) as client:
        resp = client.post("/api/predict", files=upload(over))
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_image"
    assert "4097x2048 = 8,390,656 pixels, over the limit of 8,388,608" in body["message"]
    assert fake.calls == []


def test_the_budget_is_a_setting_and_the_page_explains_it(fake: FakeClient) -> None:
    with app_client(fake, max_image_pixels=100 * 100) as client:
        assert client.post("/api/predict", files=upload(png_bytes((100, 100)))).status_code == 200
        page = client.post("/", files=upload(png_bytes((101, 100))))
    assert page.status_code == 400 and "over the limit of 10,000" in page.text


def test_a_phone_photo_jpeg_counts_at_its_reduced_decoding_size(fake: FakeClient) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4032, 3024), (235, 235, 230)).save(buf, "JPEG", quality=70)  # 12.2 megapixels
    with app_client(fake) as client:
        assert client.post("/api/predict", files=upload(buf.getvalue(), "photo.jpg")).status_code == 200
    assert 4032 * 3024 > DEFAULT_IMAGE_PIXELS  # decoded at half size: 3 megapixels


# --------------------------------------------------------------------------- capacity and deadlines


def test_uploads_beyond_the_admission_limit_are_refused_with_retry_after() -> None:
    slow = FakeClient(delay=1.0)
    app = create_app(WebappSettings(max_pending=1), client=slow)
    codes: list[int] = []
    with TestClient(app) as client:
        first = threading.Thread(target=lambda: codes.append(client.post("/api/predict", files=upload(sample_bytes())).status_code))
        first.start()
        deadline = time.monotonic() + 10
        while app.state.admission.active == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        resp = client.post("/api/predict", files=upload(sample_bytes()))
        page = client.post("/", data={"sample": "7-sneaker"})
        first.join()
    assert resp.status_code == 503 and resp.headers["retry-after"] == "2"
    assert resp.json()["error"] == "busy" and "1 uploads are in progress" in resp.json()["message"]
    assert page.status_code == 503 and "The web app is busy" in page.text and page.headers["retry-after"] == "2"
    assert codes == [200]


def test_an_endpoint_slower_than_the_deadline_is_a_504(fake: FakeClient) -> None:
    fake.delay = 3.0
    with app_client(fake, deadline_s=0.5, timeout_s=30) as client:
        started = time.monotonic()
        resp = client.post("/api/predict", files=upload(sample_bytes()))
    assert time.monotonic() - started < 2.5
    assert resp.status_code == 504
    assert resp.json()["error"] == "deadline" and "within 0.5 seconds" in resp.json()["message"]


def test_an_upload_slower_than_the_deadline_is_a_408(fake: FakeClient) -> None:
    app = create_app(WebappSettings(deadline_s=0.5), client=fake)
    head = b'--b0\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b0"), (b"host", b"app")],
        "client": ("127.0.0.1", 1), "server": ("app", 80),
    }  # fmt: skip
    sent: list[dict] = []

    async def receive() -> dict:  # the headers, then ten bytes every 0.1 s, for two seconds
        if not sent and not getattr(receive, "started", False):
            receive.started = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": head, "more_body": True}
        await asyncio.sleep(0.1)
        return {"type": "http.request", "body": b"\0" * 10, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    async def go() -> None:
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(app(scope, receive, send), 5)

    asyncio.run(go())
    assert sent[0]["status"] == 408
    assert b'"upload_timeout"' in sent[1]["body"] and b"within 0.5 seconds" in sent[1]["body"]
    assert fake.calls == []


def test_an_endpoint_answer_over_the_size_limit_is_a_502_naming_it() -> None:
    big = b'{"predictions": [' + b" " * (2 * 1024 * 1024) + b"]}"

    async def chunks():
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    streamed = httpx.MockTransport(lambda request: httpx.Response(200, content=chunks()))
    declared = httpx.MockTransport(lambda request: httpx.Response(200, content=big))
    for transport in (streamed, declared):
        settings = WebappSettings(max_response_mb=1)
        endpoint = HttpPredictionClient(settings.endpoint_url, timeout=5, max_response_bytes=settings.max_response_bytes,
                                        transport=transport)  # fmt: skip
        with TestClient(create_app(settings, client=endpoint)) as client:
            resp = client.post("/api/predict", files=upload(sample_bytes()))
        assert resp.status_code == 502
        assert resp.json()["error"] == "endpoint_error"
        assert "larger than the 1 MB limit" in resp.json()["message"]


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        (b"--b0\r\nno headers at all", "multipart/form-data; boundary=b0", "malformed"),
        (b"x", "multipart/form-data", "no boundary"),
        (b"".join(b'--b0\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(9)) + b"--b0--\r\n",
         "multipart/form-data; boundary=b0", "over 8 parts"),
        (b'--b0\r\nContent-Disposition: form-data; name="note"\r\n\r\n' + b"x" * 2000 + b"\r\n--b0--\r\n",
         "multipart/form-data; boundary=b0", "Field 'note' is over 1024 bytes"),
        (b"<xml/>", "application/xml", "The body is application/xml"),
    ],
    ids=["malformed", "no-boundary", "too-many-parts", "big-field", "not-a-form"],
)
def test_a_body_that_is_not_the_expected_form_is_a_422(fake: FakeClient, body: bytes, ctype: str, message: str) -> None:
    with app_client(fake) as client:
        resp = client.post("/api/predict", content=body, headers={"content-type": ctype})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "invalid_request" and message in resp.json()["message"]


# --------------------------------------------------------------------------- the pool


def test_the_pool_runs_the_cheapest_job_first_and_keeps_a_thread_for_small_ones() -> None:
    pool = WorkPool("test", 1, reserved=1, cheap_cost=10)
    pool.start()
    gate = threading.Event()
    order: list[str] = []

    def job(name: str, wait: bool = False) -> str:
        if wait:
            gate.wait(5)
        order.append(name)
        return name

    async def go() -> None:
        big = asyncio.ensure_future(pool.run(job, "big-running", True, cost=100))
        await asyncio.sleep(0.1)  # the general thread is busy with it
        queued = [asyncio.ensure_future(pool.run(job, n, cost=c)) for n, c in (("big-2", 90), ("big-1", 50))]
        small = await asyncio.wait_for(pool.run(job, "small", cost=5), 2)  # the reserved thread takes it
        assert small == "small" and order == ["small"]
        gate.set()
        await asyncio.gather(big, *queued)

    try:
        asyncio.run(go())
    finally:
        pool.close()
    assert order == ["small", "big-running", "big-1", "big-2"]  # cheapest first


def test_a_job_still_queued_at_its_deadline_is_dropped_and_a_running_one_abandoned() -> None:
    pool = WorkPool("test", 1)
    pool.start()
    gate = threading.Event()
    ran: list[str] = []

    async def go() -> None:
        running = pool.run(lambda: (gate.wait(5), ran.append("first")), deadline=Deadline(0.2))
        queued = pool.run(lambda: ran.append("second"), deadline=Deadline(0.2))
        results = await asyncio.gather(running, queued, return_exceptions=True)
        assert isinstance(results[0], DeadlineExceeded)
        assert isinstance(results[1], Busy) and "within 0.2 s" in results[1].reason
        gate.set()

    try:
        asyncio.run(go())
        time.sleep(0.2)
    finally:
        pool.close()
    assert ran == ["first"]  # the dropped job never ran


def test_a_full_queue_and_a_stopped_pool_refuse_work() -> None:
    pool = WorkPool("test", 1, max_queued=1)
    with pytest.raises(Busy, match="not running"):
        pool.submit(lambda: None)
    pool.start()
    gate = threading.Event()
    try:
        pool.submit(gate.wait, 5)
        time.sleep(0.1)
        pool.submit(lambda: None)
        with pytest.raises(Busy, match="1 test jobs are waiting"):
            pool.submit(lambda: None)
    finally:
        gate.set()
        pool.close()


def test_admission_counts_what_is_in_progress() -> None:
    admission = Admission(2)
    with admission.enter(), admission.enter():
        assert admission.active == 2
        with pytest.raises(Busy, match="2 uploads are in progress"), admission.enter():
            pass
    assert admission.active == 0


def test_admission_calls_on_idle_when_the_last_upload_leaves() -> None:
    idle: list[int] = []
    admission = Admission(3, on_idle=lambda: idle.append(admission.active))
    with admission.enter():
        with admission.enter():
            pass
        assert idle == []  # one still in progress
    assert idle == [0]
    with pytest.raises(RuntimeError), admission.enter():
        raise RuntimeError("a failed upload leaves too")
    assert idle == [0, 0]
