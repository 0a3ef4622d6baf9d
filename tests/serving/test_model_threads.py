"""Thread settings of the served model: full batches run on a second, wider session."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.serving.conftest import client_for, ready
from tests.serving.tiny_model import bar_image
from vertex_edge.serving.model import available_cpus, load_model_dir


class Counting:
    """Wraps an ONNX Runtime session and counts the batch sizes it ran."""

    def __init__(self, session: Any) -> None:
        self.session, self.sizes = session, []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.sizes.append(len(next(iter(feeds.values()))))
        return self.session.run(names, feeds)


def test_one_requests_images_from_wide_min_up_run_on_the_wide_session(model_dir: Path) -> None:
    model = load_model_dir(model_dir, threads=1, wide_threads=2, wide_min=8)
    assert model.wide_session is not None
    assert model.wide_session.get_session_options().intra_op_num_threads == 2
    assert model.session.get_session_options().intra_op_num_threads == 1
    narrow, wide = Counting(model.session), Counting(model.wide_session)
    counted = dataclasses.replace(model, session=narrow, wide_session=wide)
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28)).astype(np.float32)
    outputs = [counted.predict(images[:n], wide=True) for n in (1, 7, 8, 16)]
    counted.predict(images)  # a batch of many small requests: never wide
    assert (narrow.sizes, wide.sizes) == ([1, 7, 16], [8, 16])
    np.testing.assert_allclose(outputs[3][:8], outputs[2], atol=1e-6)  # the same model either way
    np.testing.assert_allclose(model.predict(images[:8]), outputs[2], atol=1e-6)


def test_no_second_session_when_it_would_not_have_more_threads(model_dir: Path) -> None:
    assert load_model_dir(model_dir, threads=2, wide_threads=2, wide_min=8).wide_session is None
    assert load_model_dir(model_dir, threads=1).wide_session is None  # the library default: one session


def test_available_cpus_honours_a_cgroup_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs
    assert available_cpus(cpu_max) == min(2, available_cpus(tmp_path / "absent"))
    cpu_max.write_text("max 100000\n")
    assert available_cpus(cpu_max) == available_cpus(tmp_path / "absent") >= 1


def test_the_server_is_ready_on_one_session_and_opens_the_wide_one_after(model_dir: Path) -> None:
    with client_for(model_dir, ort_threads=1, ort_wide_threads=2, max_batch=8) as client:
        ready(client)
        deadline = time.monotonic() + 30
        while client.app.state.serving.model.wide_session is None:
            assert time.monotonic() < deadline, "the wide session was never opened"
            time.sleep(0.02)
        model = client.app.state.serving.model
        assert (model.threads, model.wide_min) == (1, 8)
        r = client.post("/predict", json={"instances": [bar_image(i % 10).tolist() for i in range(20)]})
        assert r.status_code == 200
        assert [p["class_id"] for p in r.json()["predictions"]] == [i % 10 for i in range(20)]


def test_one_thread_in_all_keeps_one_session(model_dir: Path) -> None:
    with client_for(model_dir, ort_threads=1, ort_wide_threads=1) as client:
        ready(client)
        time.sleep(0.2)
        assert client.app.state.serving.model.wide_session is None
