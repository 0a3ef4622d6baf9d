"""Small ONNX models with a hidden Dense layer (the real model's shape, in miniature) and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.synthetic import LABELS, synthetic_images
from vertex_edge.artifact import InputSpec, ModelArtifact, ModelCard, OutputSpec, TrainMetrics, digests


def dense_model(*, hidden: int = 16, mirror: bool = False, seed: int = 0, opset: int = 17) -> bytes:
    """image [N,28,28] -> /255 -> Dense(hidden, relu) -> Dense(10) -> softmax (averaged over the image and
    its mirror image when ``mirror``). The first ten hidden units detect the bars of
    :func:`tests.synthetic.synthetic_images`, so it classifies those images correctly."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.01, size=(784, hidden)).astype(np.float32)
    for k in range(min(10, hidden)):
        rows = np.zeros((28, 28), np.float32)
        rows[2 * k + 3 : 2 * k + 6, 4:24] = 1.0
        rows[2 * k + 6 : 2 * k + 8, 4:24] = -0.5
        rows[max(0, 2 * k + 1) : 2 * k + 3, 4:24] = -0.5
        w1[:, k] = rows.reshape(-1) / 20.0
    w2 = np.zeros((hidden, 10), np.float32)
    w2[: min(10, hidden), : min(10, hidden)] = np.eye(min(10, hidden)) * 8.0
    inits = [
        numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"),
        numpy_helper.from_array(np.array(255.0, np.float32), "scale"),
        numpy_helper.from_array(w1, "W1"),
        numpy_helper.from_array(np.zeros(hidden, np.float32), "b1"),
        numpy_helper.from_array(w2, "W2"),
        numpy_helper.from_array(np.zeros(10, np.float32), "b2"),
    ]

    def branch(tag: str, image: str) -> tuple[list, str]:
        nodes = [
            helper.make_node("Reshape", [image, "shape"], [f"{tag}flat"]),
            helper.make_node("Div", [f"{tag}flat", "scale"], [f"{tag}x"]),
            helper.make_node("MatMul", [f"{tag}x", "W1"], [f"{tag}h0"]),
            helper.make_node("Add", [f"{tag}h0", "b1"], [f"{tag}h1"]),
            helper.make_node("Relu", [f"{tag}h1"], [f"{tag}hidden"]),
            helper.make_node("MatMul", [f"{tag}hidden", "W2"], [f"{tag}l0"]),
            helper.make_node("Add", [f"{tag}l0", "b2"], [f"{tag}logits"]),
            helper.make_node("Softmax", [f"{tag}logits"], [f"{tag}probs"], axis=1),
        ]
        return nodes, f"{tag}probs"

    nodes, out = branch("a_", "image")
    if mirror:
        inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                  (("s", [-1]), ("e", [-29]), ("ax", [2]), ("st", [-1]))]  # fmt: skip
        inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        nodes.append(helper.make_node("Slice", ["image", "s", "e", "ax", "st"], ["mirrored"]))
        more, out_b = branch("b_", "mirrored")
        nodes += more
        nodes += [helper.make_node("Add", [out, out_b], ["sum"]), helper.make_node("Mul", ["sum", "half"], ["avg"])]
        out = "avg"
    nodes.append(helper.make_node("Identity", [out], ["probabilities"]))
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def heldout(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic held-out images (float32) and labels."""
    labels = np.random.default_rng(seed).integers(0, 10, size=n)
    return synthetic_images(labels, seed).astype(np.float32), labels


def model_folder(folder: Path, *, mirror: bool = False, version: str = "20261201T000000Z-aaaaaaaa") -> Path:
    """A model folder (model.onnx + a minimal card) for the dense model."""
    folder.mkdir(parents=True, exist_ok=True)
    data = dense_model(mirror=mirror)
    (folder / "model.onnx").write_bytes(data)
    card = ModelCard(
        name="fashion-mnist", version=version, created="2026-12-01T00:00:00+00:00", labels=LABELS,
        input=InputSpec(name="image", shape=[None, 28, 28]), output=OutputSpec(shape=[None, 10]),
        data_version="synthetic", metrics=TrainMetrics(test_accuracy=1.0), artifacts=digests(folder, ("model.onnx",)),
    )  # fmt: skip
    ModelArtifact(folder, card).write_card()
    return folder
