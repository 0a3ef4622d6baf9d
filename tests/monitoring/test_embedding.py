"""The penultimate activations as a second ONNX output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.monitoring.helpers import dense_model, heldout
from tests.serving.tiny_model import build_onnx
from vertex_edge.errors import DataError
from vertex_edge.monitoring.embedding import EMBEDDING_OUTPUT, add_embedding_output, with_embedding_output
from vertex_edge.monitoring.profile import run_model


def test_the_embedding_is_the_hidden_layer_and_probabilities_do_not_change() -> None:
    images, _ = heldout(64)
    original = dense_model()
    edited = with_embedding_output(original)
    before, after = run_model(original, images), run_model(edited, images)
    np.testing.assert_array_equal(before["probabilities"], after["probabilities"])
    assert after[EMBEDDING_OUTPUT].shape == (64, 16)
    w1 = next(numpy_helper.to_array(i) for i in onnx.load_from_string(original).graph.initializer if i.name == "W1")
    expected = np.maximum(images.reshape(64, -1) / 255.0 @ w1, 0.0)
    np.testing.assert_allclose(after[EMBEDDING_OUTPUT], expected, atol=1e-5)


def test_a_mirror_averaging_model_averages_both_branches() -> None:
    images, _ = heldout(16)
    edited = with_embedding_output(dense_model(mirror=True))
    plain = run_model(with_embedding_output(dense_model()), images)[EMBEDDING_OUTPUT]
    mirrored = run_model(with_embedding_output(dense_model()), images[:, :, ::-1].copy())[EMBEDDING_OUTPUT]
    np.testing.assert_allclose(run_model(edited, images)[EMBEDDING_OUTPUT], (plain + mirrored) / 2, atol=1e-5)


def test_editing_twice_changes_nothing_and_the_file_is_rewritten_atomically(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(dense_model())
    assert add_embedding_output(path) == 16
    once = path.read_bytes()
    assert add_embedding_output(path) == 16
    assert path.read_bytes() == once
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_a_model_without_a_dense_softmax_layer_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["image"], ["probabilities"], axis=2)], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 28, 28])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(DataError, match="layer before the softmax") as info:
        with_embedding_output(model.SerializeToString())
    assert info.value.hint


def test_the_serving_tests_tiny_model_gets_its_input_layer_as_embedding(tmp_path: Path) -> None:
    build_onnx(tmp_path / "tiny.onnx")
    assert add_embedding_output(tmp_path / "tiny.onnx") == 784
